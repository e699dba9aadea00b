"""What ./status.sh prints: each service of a run directory, asked for its ``Stats``.

``python3 -m market.ops.status [--json] [--secret-file FILE] [--tls-ca FILE] [--tls-cert
FILE --tls-key FILE] NAME=PID=ADDRESS[=TLS_DIR] ...`` (PID and ADDRESS empty for a service
that is not running; TLS_DIR where the certificates of a service that run_all.sh started
with TLS are). Each running service gets one ``Stats`` request (the databases after
proving the secret); nothing is changed.

Over TLS (a TLS_DIR, or ``--tls-ca`` / MARKET_TLS_CA for every service: no plaintext
fallback) the service's certificate is verified against the CA (``--tls-ca``, else
TLS_DIR/ca.crt) and the host in ADDRESS; a database, which asks for a client certificate,
is shown ``--tls-cert`` (else the seller frontend's, TLS_DIR/seller_server.crt: status.sh
acts for the deployment, as it proves its secret). The rates leave out ``Stats`` requests themselves, so that
watching a service does not show up as its load.

A row's state: ``up``; ``degraded`` (a frontend that answers but cannot reach one of its
databases, answers without a copy, or whose databases belong to different markets: the
reason is printed); ``no answer`` (running, but its ``Stats`` did not come back); ``down``
(not running). Exit status: 0 when every service is up, 1 when one is degraded and none
is worse, 2 when one is down or does not answer.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from market.config import STATUS_TIMEOUT
from market.errors import NoAnswer
from market.errors import TlsError
from market.net.client import Client, parse_address
from market.net.flags import add_tls_flags
from market.net.secret import read_secret
from market.net.tls import client_context
from protocol import ApiError

DATABASES = ("product_db", "customer_db")
COLUMNS = ("NAME", "PID", "ADDRESS", "STATE", "UPTIME", "OK/S", "ERRORS", "P99", "CONNS",
           "MEMORY")


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
                           "address": address or None, "state": "down"}
    if not pid:
        return row
    row["state"] = "no answer"
    try:
        context = tls_context(name, tls_dir, tls)
    except TlsError as error:
        row["error"] = f"it serves TLS, but {error}"
        return row
    try:
        client = Client(parse_address(address), STATUS_TIMEOUT,
                        secret=secret if name in DATABASES else None, tls=context)
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
    if reasons:
        row["error"] = "; ".join(reasons)
    return row


def tls_context(name: str, tls_dir: str, tls: argparse.Namespace | None):
    """The context to ask service ``name`` with over TLS, or None for plaintext: the CA of
    ``--tls-ca`` or else of ``tls_dir``; for a database, a certificate to show too."""
    ca = (tls.tls_ca if tls else "") or (f"{tls_dir}/ca.crt" if tls_dir else "")
    if not ca:
        return None
    cert = key = ""
    if name in DATABASES:  # mutual TLS
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
    shown = (row["name"], str(row["pid"] or "-"), row["address"] or "-", row["state"])
    if row["state"] not in ("up", "degraded"):
        return shown + ("-",) * (len(COLUMNS) - len(shown))
    p99 = row["p99_ms"]
    return shown + (duration(row["uptime_s"]), f"{row['ok_per_s']:.1f}", str(row["errors"]),
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


def print_table(rows: list[dict[str, Any]]) -> None:
    lines = [COLUMNS] + [table_row(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
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
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
    sys.exit(max([EXIT_STATUS[row["state"]] for row in rows], default=0))


if __name__ == "__main__":
    main()
