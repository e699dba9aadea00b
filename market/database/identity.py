"""The market a database belongs to, as the database holds it (contract §12).

``market`` is the identity of the market (None until a frontend claims one with
``ClaimMarket``); ``empty`` says whether nothing but that identity was ever stored. Both go
out in ``Hello``, and the frontends decide from them whether their two databases belong
together (``market.frontend.identity``). The identity is journaled like any change, so it
lasts as long as the data: a memory-only database forgets it with its data.

Not thread-safe: the database's lock guards it (``Hello`` reads it without, each field
written whole).
"""
from __future__ import annotations


class MarketIdentity:
    """Which market this database's data belongs to, and whether it holds any."""

    def __init__(self) -> None:
        self.market: str | None = None
        self.empty = True

    def claim(self, market: str) -> dict | None:
        """The record that makes ``market`` (hex) this database's identity, or None if it
        has one already."""
        return {"kind": "market", "market": market} if self.market is None else None

    def apply(self, record: dict) -> dict:
        """Apply a ``market`` record; the reply of ``ClaimMarket``."""
        self.market = record["market"]
        return {"market": self.market}

    def saw(self, record: dict) -> None:
        """A record was stored: the database holds data unless it is the identity's own."""
        self.empty = self.empty and record.get("kind") == "market"

    def loaded(self, state: dict) -> None:
        """A snapshot was loaded: the database holds data, and the market it names."""
        self.market, self.empty = state.get("market"), False

    def hello(self) -> dict:
        return {"market": self.market, "empty": self.empty}
