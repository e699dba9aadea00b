"""Purchases of the customer database: the purchase state machine and each buyer's history.

A purchase id is *started* (``StartPurchase`` takes the session cart's lines
into it), then *committed* (``CommitPurchase`` records exactly those lines,
once) or *cancelled* (``ResolvePurchases``, or the sweeper after the purchase
timeout; its lines go back into the cart). An id never started may be
cancelled too, so that it can never commit later::

    (unknown) --start--> STARTED --commit--> COMMITTED
        |                   |
        +------cancel-------+------cancel--> CANCELLED

A purchase id is derived from the idempotency key of its ``MakePurchase`` (see
``CustomerDB.start_purchase``), so a resend finds its purchase: ``progress``
says where it is. Committed purchases are history for good; a cancelled id is
remembered for ``CANCELLED_TTL`` seconds, well past any deadline of its commit.
Money is in integer cents; ``purchase_view`` is the only place that turns it
into dollars.

Not thread-safe: the customer database holds its lock around all of it, and
decides and journals every change (``start``/``commit``/``cancel`` only apply).
"""
from __future__ import annotations

import datetime
import enum
import time
from collections import Counter
from dataclasses import dataclass, field

from market.config import CANCELLED_TTL
from market.customer.carts import Cart, Lines
from market.fields import dollars
from market.paging import make_cursor, page, read_cursor
from market.recent import Recent
from protocol import ApiError, encode_value


class PurchaseState(enum.StrEnum):
    STARTED = "started"
    COMMITTED = "committed"
    CANCELLED = "cancelled"


@dataclass
class Purchase:
    purchase_id: str
    buyer_id: int | None  # None: cancelled without ever being started
    token: str  # the session whose cart it was
    lines: Lines  # [[item_id, units], ...] taken out of that cart
    state: PurchaseState = PurchaseState.STARTED
    since: float = field(default_factory=time.monotonic)
    record: dict | None = None  # once committed: the record in cents, as journaled
    keyed: dict | None = None  # while started: its key's entry (``Database.keyed_write``)
    view: bytes = b""  # once committed: its JSON as clients see it


class Purchases:
    """Every purchase by id, the started ones by session, and each buyer's history."""

    def __init__(self) -> None:
        # Invariants: an id names one Purchase, whose state only moves as drawn
        # in the module doc; _by_id holds the started and committed ones,
        # _cancelled the cancelled ones; _started and _started_of hold exactly
        # the STARTED ones (in order of start; by session token); the
        # histories and counters below count exactly the COMMITTED ones.
        self._by_id: dict[str, Purchase] = {}
        self._cancelled = Recent(CANCELLED_TTL)
        self._started: dict[str, Purchase] = {}
        self._started_of: dict[str, set[str]] = {}
        self._history: dict[int, list[Purchase]] = {}
        self._items_purchased: Counter[int] = Counter()  # buyer_id -> units bought
        self._items_sold: Counter[int] = Counter()  # seller_id -> units sold
        self._bought_from: dict[int, dict[int, int]] = {}  # buyer_id -> item_id -> seller_id

    def get(self, purchase_id: str) -> Purchase | None:
        return self._by_id.get(purchase_id) or self._cancelled.get(purchase_id)

    def to_start(self, purchase_id: str, cart: Cart, card_problem: str) -> Lines:
        """The lines a new purchase takes out of ``cart``; in the contract's order of
        errors, ``conflict`` if the id was used, the cart is empty, or the card has a
        problem (the frontend's verdict, '' if none)."""
        if self.get(purchase_id) is not None:
            raise ApiError("conflict", "This purchase's idempotency_key was used already.")
        if not cart:
            raise ApiError("conflict", "The cart is empty: there is nothing to buy.")
        if card_problem:
            raise ApiError("conflict", f"The card was rejected: {card_problem}.")
        return cart.lines()

    def progress(self, purchase_id: str) -> dict:
        """Where the purchase is: ``started`` (with its lines: go on) or ``committed``;
        ``conflict`` once it was cancelled."""
        purchase = self.get(purchase_id)
        if purchase is None or purchase.state is PurchaseState.CANCELLED:
            raise ApiError("conflict", "This purchase was not made (it was cancelled) and "
                                       "nothing was charged; buy again with a new "
                                       "idempotency_key.")
        if purchase.state is PurchaseState.STARTED:
            return {"purchase_id": purchase_id, "state": "started", "cart": purchase.lines}
        return {"purchase_id": purchase_id, "state": "committed"}

    def bought_by(self, purchase_id: str, buyer_id: int) -> Purchase:
        """The buyer's committed purchase of this id, else ``not_found``."""
        purchase = self._by_id.get(purchase_id)
        if purchase is None or purchase.state is not PurchaseState.COMMITTED \
                or purchase.buyer_id != buyer_id:
            raise ApiError("not_found", f"You have no purchase {purchase_id}.")
        return purchase

    def keys_of(self, purchase_ids: list[str]) -> list[dict]:
        """The key entries of the started purchases among these ids."""
        return [self._started[p].keyed for p in purchase_ids
                if p in self._started and self._started[p].keyed]

    def check_commit(self, purchase_id: str, lines: list[dict]) -> None:
        """Whether the started purchase of this id may commit these lines: ``conflict`` if
        it was cancelled or never started (or committed), ``bad_request`` if its lines
        are not these."""
        purchase = self.get(purchase_id)
        if purchase is None or purchase.state is not PurchaseState.STARTED:
            raise ApiError("conflict", "The purchase took too long and was cancelled; "
                                       "nothing was bought.")
        if sorted([line["item_id"], line["quantity"]] for line in lines) \
                != sorted(purchase.lines):
            raise ApiError("bad_request", "The lines do not match the purchase's cart.")

    def verdict(self, purchase_ids: list[str]) -> tuple[list[str], list[str], list[str]]:
        """(committed, cancelled, to cancel): the committed ids, every other, and those of
        the others not cancelled yet."""
        states = {p: self.state(p) for p in purchase_ids}
        committed = [p for p in purchase_ids if states[p] is PurchaseState.COMMITTED]
        cancelled = [p for p in purchase_ids if states[p] is not PurchaseState.COMMITTED]
        return committed, cancelled, [p for p in cancelled
                                      if states[p] is not PurchaseState.CANCELLED]

    def state(self, purchase_id: str) -> PurchaseState | None:
        purchase = self.get(purchase_id)
        return purchase and purchase.state

    def held_items(self, token: str) -> set[int]:
        """The items of the session's started purchases."""
        return {item_id for purchase_id in self._started_of.get(token, ())
                for item_id, _ in self._by_id[purchase_id].lines}

    def stale(self, now: float, timeout: float) -> list[str]:
        """The ids of purchases started more than ``timeout`` seconds ago."""
        ids = []
        for purchase_id, purchase in self._started.items():
            if now - purchase.since <= timeout:
                break
            ids.append(purchase_id)
        return ids

    # -- changes (applied from journal records) ---------------------------------------

    def start(self, purchase_id: str, token: str, buyer_id: int, lines: Lines,
              keyed: dict | None = None) -> None:
        purchase = Purchase(purchase_id, buyer_id, token, lines, keyed=keyed)
        self._by_id[purchase_id] = self._started[purchase_id] = purchase
        self._started_of.setdefault(token, set()).add(purchase_id)

    def commit(self, record: dict) -> Purchase:
        purchase = self._unstart(record["purchase_id"])
        self._add_committed(purchase, record)
        return purchase

    def cancel(self, purchase_ids: list[str]) -> list[Purchase]:
        """Cancel these ids (a committed one stays committed); the purchases that were
        started (their lines go back)."""
        were_started = []
        for purchase_id in purchase_ids:
            purchase = self.get(purchase_id)
            if purchase is None:
                purchase = Purchase(purchase_id, None, "", [])
            elif purchase.state is PurchaseState.STARTED:
                self._unstart(purchase_id)
                del self._by_id[purchase_id]
                were_started.append(purchase)
            else:
                continue
            purchase.state = PurchaseState.CANCELLED
            self._cancelled.put(purchase_id, purchase)
        return were_started

    def _unstart(self, purchase_id: str) -> Purchase:
        purchase = self._started.pop(purchase_id)
        purchase.keyed = None
        mine = self._started_of[purchase.token]
        mine.discard(purchase_id)
        if not mine:
            del self._started_of[purchase.token]
        return purchase

    def _add_committed(self, purchase: Purchase, record: dict) -> None:
        purchase.state, purchase.record = PurchaseState.COMMITTED, record
        purchase.view = encode_value(purchase_view(record))
        self._by_id[purchase.purchase_id] = purchase
        self._history.setdefault(purchase.buyer_id, []).append(purchase)
        bought_from = self._bought_from.setdefault(purchase.buyer_id, {})
        for line in record["lines"]:
            bought_from[line["item_id"]] = line["seller_id"]
            self._items_purchased[purchase.buyer_id] += line["quantity"]
            self._items_sold[line["seller_id"]] += line["quantity"]

    # -- a buyer's history, a seller's sales -------------------------------------------

    def page(self, buyer_id: int, limit: int, after: str | None) -> bytes:
        """One page of the buyer's purchases (oldest first) and ``items_purchased``, as the
        JSON of ``GetPurchases``' reply."""
        start = read_cursor(after, "purchases", buyer_id)
        history = self._history.get(buyer_id, [])
        shown = page(history, start, limit, lambda purchase: len(purchase.view))
        more = start + len(shown) < len(history)
        cursor = make_cursor("purchases", buyer_id, start + len(shown)) if more else None
        return (b'{"purchases":[' + b",".join(purchase.view for purchase in shown)
                + b'],"next":' + encode_value(cursor) + b',"items_purchased":'
                + str(self._items_purchased[buyer_id]).encode() + b"}")

    def items_sold(self, seller_id: int) -> int:
        return self._items_sold[seller_id]

    def bought_from(self, buyer_id: int, item_id: int) -> int:
        """The seller the buyer bought the item from (the right to rate it), else ``conflict``."""
        seller_id = self._bought_from.get(buyer_id, {}).get(item_id)
        if seller_id is None:
            raise ApiError("conflict", f"You can rate item {item_id} only after buying it.")
        return seller_id

    def counts(self) -> dict:
        return {"purchases": sum(len(h) for h in self._history.values()),
                "pending_purchases": len(self._started)}

    # -- snapshots ---------------------------------------------------------------------

    def dump(self) -> dict:
        return {"committed": [{"buyer_id": p.buyer_id, "purchase": p.record}
                              for history in self._history.values() for p in history],
                "started": [{"purchase_id": p.purchase_id, "token": p.token,
                             "buyer_id": p.buyer_id, "lines": p.lines, "keyed": p.keyed}
                            for p in self._started.values()],
                "cancelled": [purchase_id for purchase_id, _ in self._cancelled.items()]}

    def restore(self, state: dict) -> None:
        for raw in state["committed"]:
            record = raw["purchase"]
            lines = [[line["item_id"], line["quantity"]] for line in record["lines"]]
            purchase = Purchase(record["purchase_id"], raw["buyer_id"], "", lines)
            self._add_committed(purchase, record)
        for raw in state["started"]:
            self.start(raw["purchase_id"], raw["token"], raw["buyer_id"], raw["lines"],
                       raw.get("keyed"))
        self.cancel(state["cancelled"])


def purchase_record(purchase_id: str, lines: list[dict], card_last4: str) -> dict:
    """A committed purchase's record (cents) from the lines the product database reserved."""
    record_lines = [{**line, "line_total": line["price"] * line["quantity"]} for line in lines]
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"purchase_id": purchase_id, "time": now, "lines": record_lines,
            "total": sum(line["line_total"] for line in record_lines), "card_last4": card_last4}


def purchase_view(record: dict) -> dict:
    """A committed purchase's record (cents) as clients see it (dollars)."""
    return {**record, "total": dollars(record["total"]),
            "lines": [{**line, "price": dollars(line["price"]),
                       "line_total": dollars(line["line_total"])} for line in record["lines"]]}
