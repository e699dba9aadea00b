"""The internal ops both databases serve, each declared once (see ``market.net.internal``).

Replies:
  Hello        {"service", "version", "market", "empty", "time"}, and "challenge" with a
               secret (``market.net.secret``)
  ClaimMarket  {"market"}: the identity the database holds (``market.database.identity``)
  Follow       a snapshot page or the changes since the last poll (``market.replication.feed``)
"""
from __future__ import annotations

from market.net.internal import InternalOp
from protocol import Hex, Int, Omittable, Str

HELLO = InternalOp("Hello", needs_session=False, read=True)
CLAIM_MARKET = InternalOp("ClaimMarket", {"market": Hex(8)}, needs_session=False)
# A frontend's long poll on the database's change feed: confirms the changes up to ``seen`` of
# run ``epoch``, then waits up to ``wait_ms`` for more; ``after``: the next page of a snapshot.
FOLLOW = InternalOp("Follow", {
    "follower": Str(16, 16), "epoch": Str(0, 16), "seen": Int(0), "after": Omittable(Int(1)),
    "wait_ms": Int(0, 10_000)}, needs_session=False, read=True, long_poll=True)
