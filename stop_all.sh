#!/usr/bin/env bash
# Stop the services ./run_all.sh started, by the pids it recorded in the run
# directory: TERM, then KILL whatever is left after STOP_GRACE seconds (5).
# Never kills by name; safe to run twice.
#
#   ./stop_all.sh                 stop all four
#   ./stop_all.sh buyer_server    stop only the named ones
#
# RUN_DIR: the run directory (default ./run, as for run_all.sh).
# run_all.sh sources this file for its functions; run directly, it stops.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/run}"
SERVICES=(product_db customer_db seller_server buyer_server)

# Whether process $1 is alive and runs $2.py (a zombie or a reused pid is not).
runs() {
    local args
    kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/cmdline" ]; then
        args="$(tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline")" || return 1
    else
        args="$(ps -p "$1" -o args= 2>/dev/null)" || return 1
    fi
    [[ "$args" == *"$2.py"* ]]
}

# The pid recorded for service $1, if that process still runs it; else fails.
live_pid() {
    local pidfile="$RUN_DIR/$1.pid" pid
    [ -f "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] && runs "$pid" "$1" && echo "$pid"
}

# Stop the named services and remove their pid files.
stop_services() {
    local name pid i waited=0 grace="${STOP_GRACE:-5}"
    local -a pids=() names=()
    for name in "$@"; do
        if pid="$(live_pid "$name")"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$name")
        elif [ -f "$RUN_DIR/$name.pid" ]; then
            echo "$name was not running"
        fi
        rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.address"
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
    if [ ! -d "$RUN_DIR" ] || ! compgen -G "$RUN_DIR/*.pid" >/dev/null; then
        echo "nothing to stop (no pid files in $RUN_DIR)"
        exit 0
    fi
    if [ $# -gt 0 ]; then stop_services "$@"; else stop_services "${SERVICES[@]}"; fi
fi
