"""What ./status.sh prints: each service of a run directory, asked for its ``Stats``.

``python3 -m market.ops.status [--json] [--secret-file FILE] [--tls-ca FILE] [--tls-cert
FILE --tls-key FILE] NAME=PID=ADDRESS[=TLS_DIR] ...`` (PID and ADDRESS empty for a service
that is not running; TLS_DIR where the certificates of a service that run_all.sh started
with TLS are). Each running service gets one ``Stats`` request (the databases after
proving the secret); each etcd member (``etcd_1``, ... of ``REPLICATED=1 ./run_all.sh``)
one status request (``/v3/maintenance/status``, over TLS with the same certificates);
nothing is changed.

Over TLS (a TLS_DIR, or ``--tls-ca`` / MARKET_TLS_CA for every service: no plaintext
fallback) the service's certificate is verified against the CA (``--tls-ca``, else
TLS_DIR/ca.crt) and the host in ADDRESS; a database, which asks for a client certificate,
is shown ``--tls-cert`` (else the seller frontend's, TLS_DIR/seller_server.crt: status.sh
acts for the deployment, as it proves its secret). The rates leave out ``Stats`` requests themselves, so that
watching a service does not show up as its load.

A row's state: ``up``; ``degraded`` (a frontend that answers but cannot reach one of its
databases, answers without a copy, or whose databases belong to different markets; a
replicated database's standby when no process of that database is active; an etcd member
that knows no leader or raises an alarm: the reason is printed); ``no answer`` (running,
but its ``Stats`` did not come back); ``down`` (not running). Exit status: 0 when every
service is up, 1 when one is degraded and none is worse, 2 when one is down or does not
answer.

A row's role: a replicated database process's (``active`` or ``standby``), an etcd
member's (``leader`` or ``follower``), else none ("-"). An etcd member's row has its
database's size too (on disk, and in use: ``etcdctl defrag`` gives back the rest).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from market.config import STATUS_TIMEOUT
from market.errors import NoAnswer, TlsError
from market.net.client import Client, parse_address
from market.net.flags import add_tls_flags
from market.net.secret import read_secret
from market.net.tls import client_context
from market.storage.etcd import Etcd
from protocol import ApiError

DATABASES = ("product_db", "customer_db")
COLUMNS = ("NAME", "PID", "ADDRESS", "STATE", "ROLE", "UPTIME", "OK/S", "ERRORS", "P99",
           "CONNS", "MEMORY")
ETCD_MEMBER = re.compile(r"etcd_[1-9][0-9]*")  # etcd_1, etcd_2, ...: REPLICATED=1's members


# What a row's state means for the exit status: the worst row decides.
EXIT_STATUS = {"up": 0, "degraded": 1, "no answer": 2, "down": 2}
DATABASE_NAMES = {"customer_db": "customer database", "product_db": "product database"}
COPY_OF = {"catalog": "product database", "accounts": "customer database"}


def service_status(name: str, pid: str, address: str, secret: bytes | None,
                   tls_dir: str = "", tls: argparse.Namespace | None = None) -> dict[str, Any]:
    """One service's row: "up" or "degraded" with its figures, "down" (not running) or
    "no answer" (running, but ``Stats`` did not come back; ``error`` says why, in an
    operator's words). Asked over TLS when ``tls_dir`` or ``tls.tls_ca`` is given."""
    row: dict[str, Any] = {"name": name, "pid": int(pid) if pid else None,
                           "address": address or None, "state": "down", "role": None}
    if not pid:
        return row
    row["state"] = "no answer"
    try:
        context = tls_context(name, tls_dir, tls)
    except TlsError as error:
        row["error"] = f"it serves TLS, but {error}"
        return row
    if ETCD_MEMBER.fullmatch(name):
        return etcd_status(row, context)
    try:
        client = Client(parse_address(address), STATUS_TIMEOUT,
                        secret=secret if database_of(name) else None, tls=context,
                        standby_too=True)
    except argparse.ArgumentTypeError:
        row["error"] = "its address file is missing or unreadable"
        return row
    try:
        stats = client.call("Stats")
    except ApiError as error:
        row["error"] = no_answer(error, client.health.state().get("reason", ""))
        return row
    finally:
        client.close()
    reasons = degraded(stats)
    row.update(state="degraded" if reasons else "up", **summary(stats), stats=stats)
    row["role"] = replica_role(stats)
    if reasons:
        row["error"] = "; ".join(reasons)
    return row


def database_of(name: str) -> str | None:
    """The database service ``name`` is a process of (product_db_2 -> product_db), if any."""
    return next((database for database in DATABASES
                 if re.fullmatch(rf"{database}(_[1-9][0-9]*)?", name)), None)


def replica_role(stats: dict[str, Any]) -> str | None:
    """A replicated database's role in its ``Stats`` ("active" or "standby"); None for any
    other service (Stats says it at the top, or in a "replica" object)."""
    replica = stats.get("replica")
    role = (replica if isinstance(replica, dict) else stats).get("role")
    return role if role in ("active", "standby") else None


def etcd_status(row: dict[str, Any], context) -> dict[str, Any]:
    """An etcd member's row: up (it answered its status) or degraded (it knows no leader,
    or raises an alarm), its role (leader or follower), its database's size; its uptime
    and memory from /proc, where it runs."""
    scheme = "https" if context is not None else "http"
    row["url"] = f"{scheme}://{row['address']}"
    try:
        member = Etcd([row["url"]], STATUS_TIMEOUT, context).status()[0]
    except ValueError:
        row["error"] = "its address file is missing or unreadable"
        return row
    if not member["up"]:
        row["error"] = f"it cannot be reached: {member.get('error', '')}"
        return row
    reasons = [] if member["has_leader"] else [
        "it knows no leader: fewer than a majority of the members answer each other"]
    reasons += [f"etcd raises an alarm: {alarm}" for alarm in member["alarms"]]
    row.update(state="degraded" if reasons else "up",
               role="leader" if member["leader"] else "follower", leader=member["leader"],
               db_size_bytes=member["db_size"], db_size_in_use_bytes=member["db_size_in_use"],
               version=member["version"], **process_figures(row["pid"]))
    if reasons:
        row["error"] = "; ".join(reasons)
    return row


def process_figures(pid: int) -> dict[str, Any]:
    """The uptime and resident memory of local process ``pid`` (/proc; None unread)."""
    figures: dict[str, Any] = {"uptime_s": None, "rss_bytes": None}
    try:
        with open(f"/proc/{pid}/stat") as stat:
            started = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as uptime:
            figures["uptime_s"] = round(float(uptime.read().split()[0])
                                        - started / os.sysconf("SC_CLK_TCK"), 3)
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    figures["rss_bytes"] = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return figures


def check_replicas(rows: list[dict[str, Any]]) -> None:
    """A standby is up when a process of its database is active: mark the standbys of a
    database none of whose processes is active as degraded, saying so."""
    for database in DATABASES:
        mine = [row for row in rows if database_of(row["name"]) == database and row["role"]]
        if not mine or any(row["role"] == "active" for row in mine):
            continue
        for row in mine:
            if row["state"] == "up":
                row["state"] = "degraded"
                row["error"] = (f"no process of the {DATABASE_NAMES[database]} is active: it "
                                "answers nothing but Stats (an election under way, or etcd "
                                "out of reach: see its log)")


def tls_context(name: str, tls_dir: str, tls: argparse.Namespace | None):
    """The context to ask service ``name`` with over TLS, or None for plaintext: the CA of
    ``--tls-ca`` or else of ``tls_dir``; for a database, a certificate to show too."""
    ca = (tls.tls_ca if tls else "") or (f"{tls_dir}/ca.crt" if tls_dir else "")
    if not ca:
        return None
    cert = key = ""
    if database_of(name) or ETCD_MEMBER.fullmatch(name):  # mutual TLS
        cert = (tls.tls_cert if tls else "") or (f"{tls_dir}/seller_server.crt"
                                                 if tls_dir else "")
        key = (tls.tls_key if tls else "") or (f"{tls_dir}/seller_server.key"
                                               if tls_dir else "")
    return client_context(ca, cert, key)


def no_answer(error: ApiError, reason: str) -> str:
    """Why a running service's ``Stats`` did not come back, for an operator."""
    if isinstance(error, NoAnswer) or "timed out" in reason or "no reply within" in reason:
        return (f"the process runs but did not answer within {STATUS_TIMEOUT:g} s (stopped, "
                "or overloaded?)")
    if "refused" in reason:
        return "it refuses connections (is its port another program's?)"
    if reason:
        return f"it cannot be reached: {reason}"
    return f"it answered {error.code}: {error.message}"


def degraded(stats: dict[str, Any]) -> list[str]:
    """Why a frontend that answers cannot serve as it should (none for a database)."""
    reasons = [f"cannot reach the {DATABASE_NAMES[name]} for {state['for_s']:g} s "
               f"({state['reason']})"
               for name, state in stats.get("databases", {}).items() if not state["up"]]
    if stats.get("one_market") is False:
        reasons.append("its databases belong to different markets: it refuses every request "
                       "(see its log)")
    reasons += [f"answers without its copy of the {COPY_OF[name]} (asks it every time)"
                for name, copy in stats.get("copies", {}).items() if not copy["fresh"]]
    return reasons


def summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The figures of a row, from one ``Stats`` reply: ok requests per second and the
    errors by code over the last minute, and the p99 latency of all requests in it."""
    ok = 0
    errors: dict[str, int] = {}
    for op, outcomes in stats["ops_last_60s"].items():
        if op == "Stats":
            continue
        for outcome, count in outcomes.items():
            if outcome == "ok":
                ok += count
            else:
                errors[outcome] = errors.get(outcome, 0) + count
    window = stats["window_s"]
    return {"uptime_s": stats["uptime_s"], "ok_per_s": round(ok / window, 2) if window else 0.0,
            "errors": sum(errors.values()), "errors_by_code": errors,
            "p99_ms": stats["latency_last_60s"]["p99_ms"], "connections": stats["connections"],
            "rss_bytes": stats["rss_bytes"]}


def table_row(row: dict[str, Any]) -> tuple[str, ...]:
    shown = (row["name"], str(row["pid"] or "-"), row["address"] or "-", row["state"],
             row.get("role") or "-")
    if row["state"] not in ("up", "degraded"):
        return shown + ("-",) * (len(COLUMNS) - len(shown))
    uptime = "-" if row["uptime_s"] is None else duration(row["uptime_s"])
    if "ok_per_s" not in row:  # an etcd member: no Stats
        return shown + (uptime, "-", "-", "-", "-", mebibytes(row["rss_bytes"]))
    p99 = row["p99_ms"]
    return shown + (uptime, f"{row['ok_per_s']:.1f}", str(row["errors"]),
                    "-" if p99 is None else f"{p99:.1f} ms",
                    "{open}/{max}".format(**row["connections"]), mebibytes(row["rss_bytes"]))


def duration(seconds: float) -> str:
    """3d 4h, 4h 5m, 5m 6s or 6s."""
    seconds = int(seconds)
    days, hours = divmod(seconds // 3600, 24)
    minutes, seconds = divmod(seconds % 3600, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def mebibytes(count: int | None) -> str:
    return "-" if count is None else f"{count / 2 ** 20:.1f} MiB"


def size(count: int) -> str:
    """Bytes as KiB under a MiB, else as MiB or GiB: 20.0 KiB, 1.5 MiB."""
    for unit, power in (("GiB", 30), ("MiB", 20)):
        if count >= 2 ** power:
            return f"{count / 2 ** power:.1f} {unit}"
    return f"{count / 1024:.1f} KiB"


def print_table(rows: list[dict[str, Any]]) -> None:
    lines = [COLUMNS] + [table_row(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    for row in rows:
        if "db_size_bytes" in row:
            print(f"{row['name']}: etcd {row['version']}; its database "
                  f"{size(row['db_size_bytes'])}, {size(row['db_size_in_use_bytes'])} of it in "
                  "use")
    for row in rows:
        if "error" in row:
            print(f"{row['name']}: {row['error']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m market.ops.status",
                                     description="Ask each service for its Stats (status.sh).")
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    parser.add_argument("--secret-file", default="", help="the deployment's secret")
    add_tls_flags(parser, client=True)
    parser.add_argument("services", nargs="*", metavar="NAME=PID=ADDRESS[=TLS_DIR]")
    args = parser.parse_args(argv)
    secret = read_secret(args.secret_file)
    rows = []
    for entry in args.services:
        name, pid, address, tls_dir = (entry.split("=", 3) + [""])[:4]
        rows.append(service_status(name, pid, address, secret, tls_dir, args))
    check_replicas(rows)
    try:
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print_table(rows)
        sys.stdout.flush()
    except BrokenPipeError:  # ./status.sh | head: the rest is not wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(max([EXIT_STATUS[row["state"]] for row in rows], default=0))


if __name__ == "__main__":
    main()
