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
FRONTENDS=(seller_server buyer_server)  # the roles that run_all.sh may start several of

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

# The script (without .py) that service instance $1 runs; fails for a name
# that is no service: seller_server_2 -> seller_server.
script_of() {
    local base
    for base in "${SERVICES[@]}"; do
        [ "$1" = "$base" ] && { echo "$base"; return 0; }
    done
    for base in "${FRONTENDS[@]}"; do
        [[ "$1" =~ ^${base}_[1-9][0-9]*$ ]] && { echo "$base"; return 0; }
    done
    return 1
}

# The services: the four base names, each followed by the further instances
# of it that run_all.sh recorded (a pid file, or a log once stopped) in order:
# seller_server, seller_server_2, seller_server_3, ...
known_services() {
    local base file name
    local -a extra
    for base in "${SERVICES[@]}"; do
        echo "$base"
        extra=()
        for file in "$RUN_DIR/${base}"_*.pid "$RUN_DIR/${base}"_*.log; do
            [ -f "$file" ] || continue
            name="$(basename "${file%.*}")"
            script_of "$name" >/dev/null && [[ " ${extra[*]} " != *" $name "* ]] \
                && extra+=("$name")
        done
        if [ ${#extra[@]} -gt 0 ]; then printf '%s\n' "${extra[@]}" | sort -t_ -k3,3n; fi
    done
}

# Whether process $1 is alive and runs the script of service $2 (a zombie or a
# reused pid is not): seller_server_2 runs seller_server.py.
runs() {
    local args script
    script="$(script_of "$2")" || return 1
    kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/cmdline" ]; then
        args="$(tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline")" || return 1
    else
        args="$(ps -p "$1" -o args= 2>/dev/null)" || return 1
    fi
    [[ "$args" == *"$script.py"* ]]
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
            "$RUN_DIR/$name.tls"
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
frontends run_all.sh recorded (seller_server_2, buyer_server_2, ...).

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
