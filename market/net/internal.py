"""The internal API between the frontends and the databases: how an internal op is declared.

Each internal op is declared once, as an ``InternalOp``: its name, its argument schema,
whether it needs a session, and whether it only reads. The declarations live in
``market.customer.api``, ``market.product.api`` and ``market.database.api`` (the ops both
databases serve); a database builds its op table from them (``Database.add_ops``) and a
frontend calls them (``Client.call(op, args, session)``), so a rename or a new argument is
one edit, seen by both sides.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from protocol import Validator


@dataclass(frozen=True, eq=False)
class InternalOp:
    """One op a database serves to the frontends (hashed by identity: each is declared once,
    and op tables are keyed by it)."""

    name: str
    schema: dict[str, Validator] = field(default_factory=dict)
    needs_session: bool = True
    # Only reads: a client may send it again on a fresh connection when the
    # first send failed. Never true for a change.
    read: bool = False
    # A change that carries its own key (an idempotency key, a purchase id, a vote
    # key): the database applies it at most once and answers a resend with the first
    # outcome, so a client whose reply was lost sends it once more before giving up.
    keyed: bool = False
    # Waits for news by design (a frontend's long poll): left out of ``Stats``'
    # ``latency_last_60s``, so an idle database does not look slow.
    long_poll: bool = False

