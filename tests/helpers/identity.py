"""A market's identity, as test_identity and test_restarts look at it: which market a
database belongs to, and whether a frontend refuses a request because its two databases
belong to different markets."""
from __future__ import annotations

import time

from market.net.client import Client
from market.ops.launch import ServiceProcess

MISMATCH = "do not belong together"


def market_of(proc: ServiceProcess) -> str | None:
    """The market identity a database's Hello names (the tests' databases have no secret)."""
    client = Client(proc.address)
    try:
        return client.call("Hello", read=True)["market"]
    finally:
        client.close()


def refused(api, op: str = "CreateAccount", **args) -> bool:
    """True if ``op`` is refused because the databases belong to different markets
    (by default: a new account, with a fresh name)."""
    if op == "CreateAccount" and not args:
        args = {"username": f"probe{time.monotonic_ns()}", "password": "pw"}
    try:
        api(op, **args)
    except Exception as error:  # noqa: BLE001 - an ApiError or a transport error
        return getattr(error, "code", "") == "unavailable" and MISMATCH in str(error)
    return False
