"""The customer side of votes: each buyer's vote per item, and the sellers' thumbs it moves.

A buyer votes on an item it bought (public ``ProvideFeedback``); the vote
counts for the item's seller here and for the item in the product database.
``RecordVote`` *counts* it, once per buyer and item; ``RevokeVote`` with the
same attempt's key *revokes* it (the frontend's undo when the product side
failed), after which the buyer may vote on the item again::

    (none) --record--> COUNTED --revoke (same key)--> REVOKED --record--> COUNTED

Not thread-safe: the customer database holds its lock around all of it, and
decides and journals every change (``record``/``revoke`` only apply).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol import ApiError


class Thumb(enum.StrEnum):
    UP = "up"
    DOWN = "down"


class VoteState(enum.StrEnum):
    COUNTED = "counted"
    REVOKED = "revoked"


@dataclass
class Vote:
    buyer_id: int
    item_id: int
    seller_id: int
    thumb: Thumb
    key: str  # names the attempt: only its own revoke undoes it
    state: VoteState = VoteState.COUNTED


@dataclass
class Thumbs:
    up: int = 0
    down: int = 0


class Votes:
    """The buyers' votes by (buyer, item), and each seller's thumbs."""

    def __init__(self) -> None:
        # Invariants: at most one vote per (buyer, item); a seller's Thumbs count
        # exactly the COUNTED votes for that seller, by thumb.
        self._votes: dict[tuple[int, int], Vote] = {}
        self._thumbs: dict[int, Thumbs] = {}

    def check_new(self, buyer_id: int, item_id: int) -> None:
        """``conflict`` if the buyer's vote on the item counts already."""
        vote = self._votes.get((buyer_id, item_id))
        if vote is not None and vote.state is VoteState.COUNTED:
            raise ApiError("conflict", f"You have already rated item {item_id}.")

    def revocable(self, buyer_id: int, item_id: int, key: str) -> bool:
        """Whether the vote of attempt ``key`` is the one counted."""
        vote = self._votes.get((buyer_id, item_id))
        return vote is not None and vote.state is VoteState.COUNTED and vote.key == key

    def thumbs(self, seller_id: int) -> Thumbs:
        return self._thumbs.get(seller_id, Thumbs())

    # -- changes (applied from journal records) ---------------------------------------

    def record(self, vote: Vote) -> None:
        self._votes[vote.buyer_id, vote.item_id] = vote
        self._count(vote, 1)

    def revoke(self, buyer_id: int, item_id: int) -> None:
        vote = self._votes[buyer_id, item_id]
        vote.state = VoteState.REVOKED
        self._count(vote, -1)

    def _count(self, vote: Vote, step: int) -> None:
        thumbs = self._thumbs.setdefault(vote.seller_id, Thumbs())
        if vote.thumb is Thumb.UP:
            thumbs.up += step
        else:
            thumbs.down += step

    # -- snapshots ---------------------------------------------------------------------

    def dump(self) -> list[dict]:
        return [{"buyer_id": v.buyer_id, "item_id": v.item_id, "seller_id": v.seller_id,
                 "vote": v.thumb.value, "key": v.key, "state": v.state.value}
                for v in self._votes.values()]

    def restore(self, state: list[dict]) -> None:
        for raw in state:
            vote = Vote(raw["buyer_id"], raw["item_id"], raw["seller_id"], Thumb(raw["vote"]),
                        raw["key"])
            self.record(vote)
            if raw["state"] == VoteState.REVOKED:
                self.revoke(vote.buyer_id, vote.item_id)
