"""A running market the benchmark is pointed at (``performance.py --target``).

Its frontends are where the clients go; they, and the databases named with
``--target-dbs``, are asked for ``Stats`` before and after each run, so the
results can say what each service counted meanwhile. Nothing else is sent to a
database. A service that has no ``Stats`` (``unknown_op``), refuses it or does
not answer is reported as not available, and the run goes on.
"""
from __future__ import annotations

import ssl
from collections import Counter
from dataclasses import dataclass

from market.config import STATUS_TIMEOUT
from market.net.client import Client, parse_address
from protocol import ApiError


@dataclass
class Target:
    """Frontends by role (several of a role share its clients in turn), the databases to
    take ``Stats`` of, and the deployment's secret that a database asks for; over TLS, the
    context to verify the frontends with (``tls``) and the databases (``db_tls``, which
    shows them a certificate)."""

    addresses: dict[str, list[tuple[str, int]]]
    databases: list[tuple[str, int]]
    secret: bytes | None = None
    tls: ssl.SSLContext | None = None
    db_tls: ssl.SSLContext | None = None

    def stats(self) -> dict[str, dict]:
        """Each service's ``Stats`` now, by "host:port"; for one without,
        ``{"available": False, "reason": ...}``."""
        watched = [(address, None, self.tls) for role in ("seller", "buyer")
                   for address in self.addresses[role]]
        watched += [(address, self.secret, self.db_tls) for address in self.databases]
        return {"%s:%d" % address: stats_of(address, secret, tls)
                for address, secret, tls in watched}


def parse_target(frontends: str, databases: str | None, secret: bytes | None,
                 tls: ssl.SSLContext | None = None,
                 db_tls: ssl.SSLContext | None = None) -> Target:
    """'S1+S2,B1' (seller frontends, buyer frontends) and 'D1,D2' -> ``Target``."""
    sellers, _, buyers = frontends.partition(",")
    return Target({"seller": [parse_address(text) for text in sellers.split("+")],
                   "buyer": [parse_address(text) for text in buyers.split("+")]},
                  [parse_address(text) for text in databases.split(",")] if databases else [],
                  secret, tls, db_tls)


def stats_of(address: tuple[str, int], secret: bytes | None,
             tls: ssl.SSLContext | None = None) -> dict:
    client = Client(address, STATUS_TIMEOUT, secret=secret, tls=tls)
    try:
        return {"available": True, **client.call("Stats", read=True)}
    except ApiError as error:
        return {"available": False, "reason": error.code}
    except OSError as error:
        return {"available": False, "reason": error.strerror or str(error)}
    finally:
        client.close()


def counted(before: dict, after: dict) -> dict | None:
    """What one service counted between two ``Stats``: requests per outcome ("ok" and
    each error code) over all its ops but ``Stats`` itself, from all of its clients;
    None unless both are available."""
    if not (before.get("available") and after.get("available")):
        return None
    outcomes: Counter = Counter()
    for op, figures in after.get("ops", {}).items():
        if op == "Stats":
            continue
        earlier = before.get("ops", {}).get(op, {})
        for key, value in figures.items():
            if isinstance(value, int) and not key.endswith("_ms"):
                outcomes[key] += value - earlier.get(key, 0)
    return dict(outcomes)
