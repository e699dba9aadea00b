#!/usr/bin/env bash
# Say how each service ./run_all.sh started is doing: one row per service (or
# JSON), from the pid and address files in the run directory and one Stats
# request to each running service. Changes nothing. ./status.sh --help says more.
set -euo pipefail

usage() {
    local timeout
    timeout="$(config STATUS_TIMEOUT)"
    cat <<END
Usage: ./status.sh [--json] [-h|--help]

Show each service ./run_all.sh started (the pid and address files in RUN_DIR),
one row each, and with REPLICATED=1 each process of a database and each etcd
member (etcd_1, etcd_2, etcd_3):

  NAME     the service (seller_server_2 is the second seller frontend)
  PID      its process, as recorded by run_all.sh
  ADDRESS  where it listens
  STATE    up (it answered Stats); degraded (a frontend that answers but cannot
           reach one of its databases, answers without its copy of one, or
           whose databases belong to different markets; a replicated database's
           standby when no process of its database is active; an etcd member
           that knows no leader or raises an alarm; a line says why);
           no answer (running, but Stats did not come back within $timeout s;
           a line says why); down (not running)
  ROLE     a replicated database's process: active (it serves) or standby
           (it follows the log and answers unavailable; it is up while the
           other is active); an etcd member: leader or follower; else -
  UPTIME   since the service started
  OK/S     requests answered ok per second over the last minute
  ERRORS   requests answered with an error over the last minute
  P99      99th-percentile latency of all requests over the last minute
  CONNS    connections open now / the most it serves at once
  MEMORY   resident memory

OK/S and ERRORS leave out Stats requests (status.sh's own; a database still
counts the Hello and Authenticate before it). Each running service gets one
Stats request; nothing is changed. An etcd member is asked for its status
instead (its row has no OK/S, ERRORS, P99 nor CONNS; its uptime and memory are
read from /proc), and a line under the table gives its database's size, on
disk and in use (etcdctl defrag gives back the rest).

Options:
  --json        print the same as JSON, with each service's whole Stats reply
  -h, --help    print this and ask nothing

Environment:
  RUN_DIR             the run directory, as for run_all.sh (default ./run)
  MARKET_SECRET_FILE  the deployment's shared secret, which the databases ask
                      for (default RUN_DIR/secret, as run_all.sh makes it)
  MARKET_TLS_CA       the CA to verify the services' TLS certificates with; set,
                      every service is asked over TLS (default: those run_all.sh
                      started with TLS=1, verified with the CA it used)
  MARKET_TLS_CERT, MARKET_TLS_KEY
                      the certificate shown to a database or an etcd member over
                      TLS, which asks for one signed by the CA (default: the seller
                      frontend's, in the TLS directory run_all.sh used)
  PYTHON              the Python interpreter (python3)

Exit status: 0 when every service is up, 1 when one is degraded and none is
worse, 2 when one is down or does not answer, 64 for a bad option.
END
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# RUN_DIR, PYTHON, config, known_services, live_pid
source "$ROOT/stop_all.sh"

json=()
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --json) json=(--json) ;;
        *) echo "status.sh: unknown argument: $arg" >&2; usage >&2; exit 64 ;;
    esac
done

SECRET_FILE="${MARKET_SECRET_FILE:-$RUN_DIR/secret}"
secret=()
[ -r "$SECRET_FILE" ] && secret=(--secret-file "$SECRET_FILE")

services=()
while read -r name; do
    pid="$(live_pid "$name")" || pid=""
    address="" tls_dir=""
    [ -z "$pid" ] || address="$(cat "$RUN_DIR/$name.address" 2>/dev/null)" || address=""
    [ -z "$pid" ] || tls_dir="$(cat "$RUN_DIR/$name.tls" 2>/dev/null)" || tls_dir=""
    services+=("$name=$pid=$address=$tls_dir")
done < <(known_services)

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m market.ops.status "${json[@]}" "${secret[@]}" "${services[@]}"
