"""The customer side of votes: each buyer's vote per item, and the sellers' thumbs it moves.

A buyer votes on an item it bought (public ``ProvideFeedback``); the vote counts
for the item's seller here and for the item in the product database: on both,
or on neither. The product database decides (``market.product.votes``); this side
follows its verdict on the vote's key. ``RecordVote`` *records* the vote: the
buyer's one vote on the item, not yet in the seller's thumbs. ``SettleVotes``
then applies the product database's verdict on the key: *committed* (the
seller's thumbs move) or *cancelled* (the vote is dropped, and the buyer may vote
again, with the next attempt's key)::

    (none) --record--> RECORDED --settle committed--> COMMITTED
                           |
                           +------settle cancelled--> (none)

The state lives here, not in a frontend: a vote left recorded (its frontend
died, a database stalled) is listed by ``recorded_longer_than`` for the buyer
frontends' settling thread, which asks the product database for the verdict.

Not thread-safe: the customer database holds its lock around all of it, and
decides and journals every change (``record``/``settle`` only apply).
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from market.keys import vote_key
from protocol import ApiError


class Thumb(enum.StrEnum):
    UP = "up"
    DOWN = "down"


class VoteState(enum.StrEnum):
    RECORDED = "recorded"
    COMMITTED = "counted"  # (the name data formats 1 to 4 store)


@dataclass
class Vote:
    buyer_id: int
    item_id: int
    seller_id: int
    thumb: Thumb
    key: str  # the vote's key: the product database's verdict names it
    state: VoteState = VoteState.RECORDED
    since: float = field(default_factory=time.monotonic)  # when it was recorded


@dataclass
class Thumbs:
    up: int = 0
    down: int = 0


class Votes:
    """The buyers' votes by (buyer, item), the recorded ones by key, and each seller's thumbs."""

    def __init__(self) -> None:
        # Invariants: at most one vote per (buyer, item); _recorded holds exactly the
        # RECORDED votes, by key, oldest first; a seller's Thumbs count exactly the
        # COUNTED votes for that seller, by thumb.
        self._votes: dict[tuple[int, int], Vote] = {}
        self._recorded: dict[str, Vote] = {}
        self._thumbs: dict[int, Thumbs] = {}
        # (buyer, item) -> how many of the buyer's votes on the item were cancelled: the
        # attempt of its next vote (``market.keys.vote_key``). Bounded by the votes made.
        self._refusals: dict[tuple[int, int], int] = {}

    def check_new(self, buyer_id: int, item_id: int) -> None:
        """``conflict`` if the buyer has a vote on the item (counted, or still being settled)."""
        vote = self._votes.get((buyer_id, item_id))
        if vote is None:
            return
        if vote.state is VoteState.COMMITTED:
            raise ApiError("conflict", f"You have already rated item {item_id}.")
        raise ApiError("conflict", f"Your earlier vote on item {item_id} is still being "
                                   "counted: resend that vote with its idempotency_key to "
                                   "learn its outcome, or vote again in a minute.")

    def next_key(self, buyer_id: int, item_id: int) -> str:
        """The key of the buyer's next vote on the item (one per buyer, item and attempt)."""
        return vote_key(buyer_id, item_id, self._refusals.get((buyer_id, item_id), 0))

    def state(self, buyer_id: int, item_id: int, key: str) -> VoteState | None:
        """The state of the buyer's vote on the item if it is the vote of ``key``; None once
        that vote was cancelled (dropped)."""
        vote = self._votes.get((buyer_id, item_id))
        return vote.state if vote is not None and vote.key == key else None

    def recorded_longer_than(self, seconds: float, limit: int) -> list[str]:
        """Keys of votes recorded ``seconds`` ago or more and not settled, oldest first."""
        since = time.monotonic() - seconds
        keys = []
        for key, vote in self._recorded.items():
            if vote.since > since or len(keys) == limit:
                break
            keys.append(key)
        return keys

    def settling(self, keys: list[str]) -> list[str]:
        """The keys among these whose votes are recorded (those a verdict changes)."""
        return [key for key in keys if key in self._recorded]

    def sellers_of(self, keys: list[str]) -> list[int]:
        """The sellers of the recorded votes among ``keys``."""
        return [self._recorded[key].seller_id for key in keys if key in self._recorded]

    def thumbs(self, seller_id: int) -> Thumbs:
        return self._thumbs.get(seller_id, Thumbs())

    def recorded_count(self) -> int:
        return len(self._recorded)

    # -- changes (applied from journal records) ---------------------------------------

    def record(self, vote: Vote) -> None:
        self._votes[vote.buyer_id, vote.item_id] = vote
        if vote.state is VoteState.RECORDED:
            self._recorded[vote.key] = vote
        else:
            self._count(vote)

    def settle(self, committed: list[str], cancelled: list[str]) -> None:
        """Count the recorded votes of ``committed``, drop those of ``cancelled``; other keys
        (settled already, or unknown) change nothing."""
        for key in committed:
            vote = self._recorded.pop(key, None)
            if vote is not None:
                vote.state = VoteState.COMMITTED
                self._count(vote)
        for key in cancelled:
            vote = self._recorded.pop(key, None)
            if vote is not None:
                del self._votes[vote.buyer_id, vote.item_id]
                pair = vote.buyer_id, vote.item_id
                self._refusals[pair] = self._refusals.get(pair, 0) + 1

    def _count(self, vote: Vote) -> None:
        thumbs = self._thumbs.setdefault(vote.seller_id, Thumbs())
        if vote.thumb is Thumb.UP:
            thumbs.up += 1
        else:
            thumbs.down += 1

    # -- snapshots ---------------------------------------------------------------------

    def dump(self) -> list[dict]:
        """Each vote, then each buyer's count of cancelled votes per item (``refusals``)."""
        return ([{"buyer_id": v.buyer_id, "item_id": v.item_id, "seller_id": v.seller_id,
                  "vote": v.thumb.value, "key": v.key, "state": v.state.value}
                 for v in self._votes.values()]
                + [{"buyer_id": buyer_id, "item_id": item_id, "refusals": count}
                   for (buyer_id, item_id), count in self._refusals.items()])

    def restore(self, state: list[dict]) -> None:
        """Take back what ``dump`` gave; a recorded vote's age starts again now."""
        for raw in state:
            if "refusals" in raw:
                self._refusals[raw["buyer_id"], raw["item_id"]] = raw["refusals"]
            else:
                self.record(Vote(raw["buyer_id"], raw["item_id"], raw["seller_id"],
                                 Thumb(raw["vote"]), raw["key"], VoteState(raw["state"])))
