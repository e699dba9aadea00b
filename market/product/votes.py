"""The product side of votes: each vote key's verdict, and the items' thumbs it moves.

A buyer's vote (public ``ProvideFeedback``) is recorded by the customer database
under a vote key, then counted here: ``RecordVote`` counts it on the item once
per key (*counted*). Here each key's verdict is decided, once: a key counted
stays counted; ``ResolveVotes`` answers each key's verdict, *refusing* a key not
counted yet, so that a late ``RecordVote`` with it counts nothing. The customer
database follows the verdict (``market.customer.votes``), so a vote counts on both sides
or on neither. A counted key is remembered for good (one per buyer and item, so
they grow with the data, not with time): the customer database may ask for its
verdict after any outage. A refused key is remembered ``VOTE_TTL`` seconds, well
past the deadline of any ``RecordVote`` that could still arrive with it.

Not thread-safe: the product database holds its lock around all of it.
"""
from __future__ import annotations

import enum

from market.config import VOTE_TTL
from market.recent import Recent
from market.product.catalog import Item


class VoteState(enum.StrEnum):
    COUNTED = "counted"
    REFUSED = "refused"


class ItemVotes:
    """Vote keys and their verdicts.

    Invariant: an item's thumbs count exactly the keys ``counted`` for it in that
    direction; a key moves unknown -> counted or unknown -> refused, never on.
    """

    def __init__(self, ttl: float = VOTE_TTL) -> None:
        self._counted: dict[str, None] = {}  # a dict for its order: dumps compare equal
        self._refused = Recent(ttl)

    def state(self, key: str) -> VoteState | None:
        if key in self._counted:
            return VoteState.COUNTED
        return VoteState.REFUSED if key in self._refused else None

    def record(self, key: str, item: Item, vote: str) -> None:
        """Count the vote on the item, unless the key has a verdict."""
        if self.state(key) is not None:
            return
        if vote == "up":
            item.thumbs_up += 1
        else:
            item.thumbs_down += 1
        self._counted[key] = None

    def refuse(self, keys: list[str]) -> None:
        """Refuse the keys without a verdict: they never count from now on."""
        for key in keys:
            if self.state(key) is None:
                self._refused.put(key)

    def dump(self) -> list[dict]:
        return ([{"key": key, "state": VoteState.COUNTED.value} for key in self._counted]
                + [{"key": key, "state": VoteState.REFUSED.value}
                   for key, _ in self._refused.items()])

    def restore(self, entries: list[dict]) -> None:
        """Take back what ``dump`` gave (the items' thumbs are restored already)."""
        for entry in entries:
            if VoteState(entry["state"]) is VoteState.COUNTED:
                self._counted[entry["key"]] = None
            else:
                self._refused.put(entry["key"])
