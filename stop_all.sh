#!/usr/bin/env bash
# Stop the services ./run_all.sh started, by the pids it recorded in the run
# directory: TERM, then KILL whatever is left after STOP_GRACE seconds.
# Never kills by name; safe to run twice. ./stop_all.sh --help says how.
#
# run_all.sh sources this file for its functions; run directly, it stops.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/run}"
PYTHON="${PYTHON:-python3}"
SERVICES=(product_db customer_db seller_server buyer_server)
# The services run_all.sh may start several of: further frontends (SELLER_FRONTENDS, ...)
# and, with REPLICATED=1, a second process of each database (product_db_2, customer_db_2).
SEVERAL=(product_db customer_db seller_server buyer_server)
# With REPLICATED=1, run_all.sh starts the members of an etcd cluster too: etcd_1, etcd_2, ...
ETCD_MEMBER='^etcd_[1-9][0-9]*$'

# The values of market/config.py's names "$@", on one line: every default is
# defined there once (ports, STOP_GRACE, START_TIMEOUT, ...).
config() {
    (cd "$ROOT" && "$PYTHON" -m market.config "$@")
}

# The name of instance $1 of frontend $2: the first is plain seller_server,
# the others seller_server_2, seller_server_3, ...
instance_name() {
    if [ "$1" -eq 1 ]; then echo "$2"; else echo "$2_$1"; fi
}

# The script (without .py) that service instance $1 runs, or "etcd" for a member of
# the etcd cluster; fails for a name that is no service: seller_server_2 -> seller_server,
# product_db_2 -> product_db, etcd_1 -> etcd.
script_of() {
    local base
    for base in "${SERVICES[@]}"; do
        [ "$1" = "$base" ] && { echo "$base"; return 0; }
    done
    for base in "${SEVERAL[@]}"; do
        [[ "$1" =~ ^${base}_[1-9][0-9]*$ ]] && { echo "$base"; return 0; }
    done
    [[ "$1" =~ $ETCD_MEMBER ]] && { echo etcd; return 0; }
    return 1
}

# The instances recorded in the run directory (a pid file, or a log once stopped) whose
# names start with $1 and that script_of knows, in order of their number: with
# seller_server_, seller_server_2, seller_server_3, ...
recorded_instances() {
    local file name
    local -a found=()
    for file in "$RUN_DIR/$1"*.pid "$RUN_DIR/$1"*.log; do
        [ -f "$file" ] || continue
        name="$(basename "${file%.*}")"
        script_of "$name" >/dev/null && [[ " ${found[*]} " != *" $name "* ]] \
            && found+=("$name")
    done
    if [ ${#found[@]} -gt 0 ]; then printf '%s\n' "${found[@]}" | sort -t_ -k3,3n; fi
}

# The services: the four base names, each followed by the further instances
# of it that run_all.sh recorded (a pid file, or a log once stopped) in order:
# seller_server, seller_server_2, seller_server_3, ...; then the etcd members
# recorded (etcd_1, etcd_2, ...), if any.
known_services() {
    local base
    for base in "${SERVICES[@]}"; do
        echo "$base"
        recorded_instances "${base}_"
    done
    recorded_instances etcd_
}

# Whether process $1 is alive and runs service $2 (a zombie or a reused pid is
# not): seller_server_2 runs seller_server.py; etcd_2 is etcd with --name etcd_2.
runs() {
    local args script
    script="$(script_of "$2")" || return 1
    kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/cmdline" ]; then
        args="$(tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline")" || return 1
    else
        args="$(ps -p "$1" -o args= 2>/dev/null)" || return 1
    fi
    if [ "$script" = etcd ]; then
        [[ "$args " == *etcd*" --name $2 "* ]]
    else
        [[ "$args" == *"$script.py"* ]]
    fi
}

# The pid recorded for service $1, if that process still runs it; else fails.
live_pid() {
    local pidfile="$RUN_DIR/$1.pid" pid
    [ -f "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] && runs "$pid" "$1" && echo "$pid"
}

# Stop the named services and remove their pid files: the etcd members among them
# last, once the databases that keep their data there have stopped, and one at a time
# (a leader stopping hands its leadership to a member still running).
stop_services() {
    local name
    local -a members=() others=()
    for name in "$@"; do
        if [[ "$name" =~ $ETCD_MEMBER ]]; then members+=("$name"); else others+=("$name"); fi
    done
    if [ ${#others[@]} -gt 0 ]; then stop_now "${others[@]}"; fi
    for name in "${members[@]}"; do stop_now "$name"; done
}

# Stop the named services together (TERM to each, then KILL to those left after
# STOP_GRACE seconds) and remove their pid files.
stop_now() {
    local name pid i waited=0 grace="${STOP_GRACE:-}"
    local -a pids=() names=()
    [ -n "$grace" ] || grace="$(config STOP_GRACE)"
    for name in "$@"; do
        if pid="$(live_pid "$name")"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$name")
        elif [ -f "$RUN_DIR/$name.pid" ]; then
            echo "$name was not running (its pid file was stale)"
        else
            echo "$name is not running"
        fi
        rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.address" "$RUN_DIR/$name.out" \
            "$RUN_DIR/$name.tls" "$RUN_DIR/$name.etcd"
    done
    for i in "${!pids[@]}"; do
        while runs "${pids[$i]}" "${names[$i]}" && [ "$waited" -lt $((grace * 10)) ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if runs "${pids[$i]}" "${names[$i]}"; then
            kill -KILL "${pids[$i]}" 2>/dev/null || true
            echo "killed ${names[$i]} (pid ${pids[$i]}): it ignored TERM for ${grace} s"
        else
            echo "stopped ${names[$i]} (pid ${pids[$i]})"
        fi
    done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    usage() {
        local grace
        grace="$(config STOP_GRACE)"
        cat <<END
Usage: ./stop_all.sh [SERVICE...]

Stop the services ./run_all.sh started, by the pids it recorded in the run
directory: TERM, then KILL whatever is still running after STOP_GRACE seconds.
Never kills by name; safe to run twice.

  ./stop_all.sh                   stop every recorded service
  ./stop_all.sh buyer_server ...  stop only the named ones

Services: product_db, customer_db, seller_server, buyer_server, and the further
ones run_all.sh recorded: frontends (seller_server_2, buyer_server_2, ...) and,
with REPLICATED=1, the second process of each database (product_db_2,
customer_db_2) and the etcd members (etcd_1, etcd_2, etcd_3). The etcd members
stop last, after the databases that keep their data there.

Options:
  -h, --help    print this and stop nothing

Environment:
  RUN_DIR       the run directory, as for run_all.sh (default ./run)
  STOP_GRACE    seconds between TERM and KILL (default $grace)
  PYTHON        the Python interpreter (python3)
END
    }
    names=()
    for arg in "$@"; do
        case "$arg" in
            -h|--help) usage; exit 0 ;;
            -*) echo "stop_all.sh: unknown option: $arg" >&2; usage >&2; exit 2 ;;
            *) names+=("$arg") ;;
        esac
    done
    mapfile -t known < <(known_services)
    for name in "${names[@]}"; do
        if [[ " ${known[*]} " != *" $name "* ]]; then
            echo "stop_all.sh: no service named '$name'; the services are: ${known[*]}" >&2
            exit 2
        fi
    done
    if [ ${#names[@]} -gt 0 ]; then
        stop_services "${names[@]}"
    elif [ ! -d "$RUN_DIR" ] || ! compgen -G "$RUN_DIR/*.pid" >/dev/null; then
        echo "nothing to stop (no pid files in $RUN_DIR)"
    else  # those recorded as running (one stopped by name earlier is not named again)
        for name in "${known[@]}"; do
            [ -f "$RUN_DIR/$name.pid" ] && names+=("$name")
        done
        stop_services "${names[@]}"
    fi
fi
