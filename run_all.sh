#!/usr/bin/env bash
# Start the four services in the background, wait until each serves, and say
# where they listen and log; ./stop_all.sh stops them. Running it again starts
# only what is not running already.
#
# Environment: PRODUCT_DB_PORT (9001), CUSTOMER_DB_PORT (9002),
# SELLER_SERVER_PORT (8001), BUYER_SERVER_PORT (8002); RUN_DIR for pid files,
# logs and the secret file (./run); MARKET_SECRET_FILE (RUN_DIR/secret, made
# if missing); PYTHON (python3). The services read their other variables
# (SESSION_TIMEOUT, LOG_LEVEL, ... see README.md) themselves.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/stop_all.sh"  # RUN_DIR, SERVICES, runs, live_pid, stop_services
PYTHON="${PYTHON:-python3}"
START_TIMEOUT=10  # seconds each service gets to print its ready line

PRODUCT_DB_PORT="${PRODUCT_DB_PORT:-9001}"
CUSTOMER_DB_PORT="${CUSTOMER_DB_PORT:-9002}"
SELLER_SERVER_PORT="${SELLER_SERVER_PORT:-8001}"
BUYER_SERVER_PORT="${BUYER_SERVER_PORT:-8002}"
DATABASES=(--product-db "127.0.0.1:$PRODUCT_DB_PORT" --customer-db "127.0.0.1:$CUSTOMER_DB_PORT")

mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"

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

# Say why service $1 (log $2) did not start ($3) and show its log's tail; stop
# it and what this run started before it; exit 1.
fail() {
    local name="$1" log="$2" reason="$3"
    if grep -q "Address already in use" "$log" 2>/dev/null; then
        reason="its port is already in use (another program, or a copy not started by run_all.sh)"
    fi
    {
        echo "run_all.sh: $name did not start: $reason."
        echo "--- last lines of $log:"
        tail -n 15 "$log" 2>/dev/null || true
        echo "---"
    } >&2
    stop_services "$name" >/dev/null  # in case it still runs without having said it is ready
    if [ ${#started[@]} -gt 0 ]; then
        echo "Stopping what this run started:" >&2
        stop_services "${started[@]}" >&2
    fi
    exit 1
}

set -m  # each service in its own process group: a Ctrl-C here does not reach them
started=()
for name in "${SERVICES[@]}"; do
    case "$name" in
        product_db) args=(--port "$PRODUCT_DB_PORT") ;;
        customer_db) args=(--port "$CUSTOMER_DB_PORT") ;;
        seller_server) args=(--port "$SELLER_SERVER_PORT" "${DATABASES[@]}") ;;
        buyer_server) args=(--port "$BUYER_SERVER_PORT" "${DATABASES[@]}") ;;
    esac
    log="$RUN_DIR/$name.log"
    if pid="$(live_pid "$name")"; then
        echo "$name is already running (pid $pid)"
        continue
    fi
    [ -f "$log" ] && mv "$log" "$log.old"
    PYTHONUNBUFFERED=1 nohup "$PYTHON" "$ROOT/$name.py" "${args[@]}" \
        </dev/null >"$log" 2>&1 &
    pid=$!
    disown "$pid"  # no job notices; bash still reaps it, so kill -0 below sees an exit
    echo "$pid" >"$RUN_DIR/$name.pid"
    # market.launch reads the ready line as the tests and the benchmark do.
    if ! where="$(cd "$ROOT" && "$PYTHON" -m market.launch wait "$log" "$pid" "$START_TIMEOUT")"
    then
        kill -0 "$pid" 2>/dev/null || fail "$name" "$log" "it exited"
        fail "$name" "$log" "no ready line within $START_TIMEOUT s"
    fi
    echo "$where" >"$RUN_DIR/$name.address"
    started+=("$name")
done

for name in "${SERVICES[@]}"; do
    printf '%-14s ready on %s (pid %s), log %s\n' "$name" \
        "$(cat "$RUN_DIR/$name.address" 2>/dev/null || echo "?")" \
        "$(cat "$RUN_DIR/$name.pid")" "$RUN_DIR/$name.log"
done
if [ "$RUN_DIR" = "$ROOT/run" ]; then
    echo "Stop them with ./stop_all.sh"
else
    echo "Stop them with RUN_DIR=$RUN_DIR ./stop_all.sh"
fi
