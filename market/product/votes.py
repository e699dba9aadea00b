"""The product side of votes: the verdict on each vote, and the items' thumbs it moves.

A buyer's vote (public ``ProvideFeedback``) is recorded by the customer database under a
vote key, then counted here: ``CountVote`` counts it on the item once per key (its verdict:
*committed*). Here each key's verdict is decided, once: a key committed stays committed;
``ResolveVotes`` answers each key's verdict, *cancelling* a key not counted yet, so that a
late ``CountVote`` with it counts nothing. The customer database follows the verdict
(``market.customer.votes``), so a vote counts on both sides or on neither.

A vote key names one buyer's vote on one item (``market.keys.vote_key``): the buyer, the
item and the attempt (a buyer whose vote was refused may vote again, with the next
attempt). So the verdicts kept are one per buyer and item that ever voted, the latest
attempt's: part of the data, journaled, bounded by the votes that exist, never forgotten
while the vote counts. Keys of the shape data written before this rule holds (one
opaque key per vote) keep their verdicts as they were.

Not thread-safe: the product database holds its lock around all of it.
"""
from __future__ import annotations

import enum

from market.keys import read_vote_key, vote_key
from market.product.catalog import Item


class Verdict(enum.StrEnum):
    COMMITTED = "counted"  # (the names data formats 1 to 4 store)
    CANCELLED = "refused"


class ItemVotes:
    """Vote keys and their verdicts.

    Invariants: an item's thumbs count exactly the keys committed for it in that
    direction; a key moves unknown -> committed or unknown -> cancelled, never on; a buyer's
    attempt on an item is unknown only while no later attempt has a verdict.
    """

    def __init__(self) -> None:
        # (buyer_id, item_id) -> (attempt, verdict) of its latest attempt with a verdict.
        self._latest: dict[tuple[int, int], tuple[int, Verdict]] = {}
        self._opaque: dict[str, Verdict] = {}  # keys of the older shape

    def state(self, key: str) -> Verdict | None:
        """The key's verdict (None: none yet). An attempt older than the latest with a
        verdict was cancelled: a buyer votes again only after a cancellation."""
        parts = read_vote_key(key)
        if parts is None:
            return self._opaque.get(key)
        buyer_id, item_id, attempt = parts
        latest = self._latest.get((buyer_id, item_id))
        if latest is None or latest[0] < attempt:
            return None
        return latest[1] if latest[0] == attempt else Verdict.CANCELLED

    def record(self, key: str, item: Item, vote: str) -> None:
        """Count the vote on the item, unless the key has a verdict."""
        if self.state(key) is not None:
            return
        if vote == "up":
            item.thumbs_up += 1
        else:
            item.thumbs_down += 1
        self._decide(key, Verdict.COMMITTED)

    def cancel(self, keys: list[str]) -> None:
        """Cancel the keys without a verdict: they never count from now on."""
        for key in keys:
            if self.state(key) is None:
                self._decide(key, Verdict.CANCELLED)

    def _decide(self, key: str, verdict: Verdict) -> None:
        parts = read_vote_key(key)
        if parts is None:
            self._opaque[key] = verdict
        else:
            self._latest[parts[0], parts[1]] = (parts[2], verdict)

    def __len__(self) -> int:
        return len(self._latest) + len(self._opaque)

    def dump(self) -> list[dict]:
        return ([{"key": vote_key(buyer_id, item_id, attempt), "state": verdict.value}
                 for (buyer_id, item_id), (attempt, verdict) in self._latest.items()]
                + [{"key": key, "state": verdict.value} for key, verdict in self._opaque.items()])

    def restore(self, entries: list[dict]) -> None:
        """Take back what ``dump`` gave (the items' thumbs are restored already)."""
        for entry in entries:
            self._decide(entry["key"], Verdict(entry["state"]))
