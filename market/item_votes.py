"""The product side of votes: each vote key's state, and the items' thumbs it moves.

A buyer's vote (public ``ProvideFeedback``) carries a key naming that attempt.
``RecordVote`` counts it on the item once per key (*counted*); ``RevokeVote``
takes it back if it was counted and refuses the key from then on (*revoked*),
so a late ``RecordVote`` after its revocation changes nothing. Keys are
remembered ``VOTE_TTL`` seconds, well past any retry of either.

Not thread-safe: the product database holds its lock around all of it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from market.catalog import Item
from market.config import VOTE_TTL
from market.database import Recent



class VoteState(enum.StrEnum):
    COUNTED = "counted"
    REVOKED = "revoked"


@dataclass(frozen=True)
class VoteEntry:
    item_id: int
    vote: str  # "up" or "down"
    state: VoteState


class ItemVotes:
    """Vote keys and their states.

    Invariant: an item's thumbs count exactly the keys ``counted`` for it in
    that direction (plus those forgotten after ``VOTE_TTL``); a key moves
    unknown -> counted -> revoked or unknown -> revoked, never back.
    """

    def __init__(self, ttl: float = VOTE_TTL) -> None:
        self._keys = Recent(ttl)  # key -> VoteEntry

    def state(self, key: str) -> VoteState | None:
        entry = self._keys.get(key)
        return None if entry is None else entry.state

    def record(self, key: str, item: Item, vote: str) -> None:
        """Count the vote on the item, unless the key is known."""
        if key not in self._keys:
            _count(item, vote, 1)
            self._keys.put(key, VoteEntry(item.item_id, vote, VoteState.COUNTED))

    def revoke(self, key: str, item: Item, vote: str) -> None:
        """Take the key's vote back if it was counted; refuse the key from now on."""
        state = self.state(key)
        if state is VoteState.REVOKED:
            return
        if state is VoteState.COUNTED:
            _count(item, vote, -1)
        self._keys.put(key, VoteEntry(item.item_id, vote, VoteState.REVOKED))

    def dump(self) -> list[dict]:
        return [{"key": key, "item_id": entry.item_id, "vote": entry.vote,
                 "state": entry.state.value} for key, entry in self._keys.items()]

    def restore(self, entries: list[dict]) -> None:
        """Take back what ``dump`` gave (the items' thumbs are restored already)."""
        for entry in entries:
            self._keys.put(entry["key"], VoteEntry(entry["item_id"], entry["vote"],
                                                   VoteState(entry["state"])))


def _count(item: Item, vote: str, step: int) -> None:
    if vote == "up":
        item.thumbs_up += step
    else:
        item.thumbs_down += step
