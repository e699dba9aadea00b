"""The product side of votes: each vote key's verdict, and the items' thumbs it moves.

A buyer's vote (public ``ProvideFeedback``) is recorded by the customer database
under a vote key, then counted here: ``RecordVote`` counts it on the item once
per key (*counted*). Here each key's verdict is decided, once: a key counted
stays counted; ``ResolveVotes`` answers each key's verdict, *refusing* a key not
counted yet, so that a late ``RecordVote`` with it counts nothing. The customer
database follows the verdict (``market.votes``), so a vote counts on both sides
or on neither. Keys are remembered ``VOTE_TTL`` seconds, well past any retry.

Not thread-safe: the product database holds its lock around all of it.
"""
from __future__ import annotations

import enum

from market.catalog import Item
from market.config import VOTE_TTL
from market.database import Recent


class VoteState(enum.StrEnum):
    COUNTED = "counted"
    REFUSED = "refused"


class ItemVotes:
    """Vote keys and their verdicts.

    Invariant: an item's thumbs count exactly the keys ``counted`` for it in that
    direction (plus those forgotten after ``VOTE_TTL``); a key moves unknown ->
    counted or unknown -> refused, never on.
    """

    def __init__(self, ttl: float = VOTE_TTL) -> None:
        self._keys = Recent(ttl)  # key -> VoteState

    def state(self, key: str) -> VoteState | None:
        return self._keys.get(key)

    def record(self, key: str, item: Item, vote: str) -> None:
        """Count the vote on the item, unless the key has a verdict."""
        if key in self._keys:
            return
        if vote == "up":
            item.thumbs_up += 1
        else:
            item.thumbs_down += 1
        self._keys.put(key, VoteState.COUNTED)

    def refuse(self, keys: list[str]) -> None:
        """Refuse the keys without a verdict: they never count from now on."""
        for key in keys:
            if key not in self._keys:
                self._keys.put(key, VoteState.REFUSED)

    def dump(self) -> list[dict]:
        return [{"key": key, "state": state.value} for key, state in self._keys.items()]

    def restore(self, entries: list[dict]) -> None:
        """Take back what ``dump`` gave (the items' thumbs are restored already)."""
        for entry in entries:
            self._keys.put(entry["key"], VoteState(entry["state"]))
