"""Product database service: items, prices, units, item feedback, unit reservations.

Internal ops, spoken only by the frontends. Items travel in the spec's form
(price in dollars); reservations report prices in integer cents. Writes that
a frontend may have to undo (``ReserveUnits``, ``AddVote``) carry a key, so
their undo (``SettlePurchases``, ``RevokeVote``) is idempotent and a late
original after its undo changes nothing.
"""
from __future__ import annotations

import bisect
import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from market.database import Database, Recent, database_main, database_parser, first_id
from market.fields import (CART_MAX, CATEGORY, CONDITION, ITEM_ID, ITEM_NAME, KEYWORDS,
                           PRICE_CENTS, PURCHASE_ID, QUANTITY, SEARCH_LIMIT, SELLER_ID, UNDO_KEY,
                           VOTE, dollars)
from market.paging import CURSOR, PAGE_LIMIT, make_cursor, page, read_cursor
from market.server import Op, Request
from protocol import ApiError, Int, ListOf, RawResult, Record, encode_value

# Seconds a settled purchase id is remembered, so that a late ReserveUnits or
# SettlePurchases with it changes nothing (deadlines refuse those after seconds).
RESERVATION_TTL = 120.0
VOTE_TTL = 600.0  # seconds a vote's key is remembered, for its RevokeVote


@dataclass
class Item:
    item_id: int
    name: str
    category: int
    keywords: list[str]
    condition: str
    price: int  # cents
    quantity: int
    seller_id: int
    thumbs_up: int = 0
    thumbs_down: int = 0

    def __setattr__(self, name: str, value: Any) -> None:
        """Any change to a field drops the cached JSON."""
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_json", None)

    def json(self) -> bytes:
        """The item as every reply shows it, encoded once per change. Hold the lock."""
        if self._json is None:
            object.__setattr__(self, "_json", encode_value({
                "item_id": self.item_id, "name": self.name, "category": self.category,
                "keywords": self.keywords, "condition": self.condition,
                "price": dollars(self.price), "quantity": self.quantity,
                "seller_id": self.seller_id, "thumbs_up": self.thumbs_up,
                "thumbs_down": self.thumbs_down}))
        return self._json

    @property
    def keyword_set(self) -> frozenset[str]:
        """The keywords as search matches them: lower case."""
        return frozenset(word.lower() for word in self.keywords)

    def raw(self) -> dict:
        """The fields, for the journal."""
        return {name: value for name, value in vars(self).items() if name != "_json"}


def item_result(item: Item) -> RawResult:
    return RawResult(b'{"item":' + item.json() + b"}")


def items_result(items: list[Item]) -> RawResult:
    return RawResult(b'{"items":[' + b",".join([item.json() for item in items]) + b"]}")


@dataclass
class Reservation:
    """The units one purchase took: ``pending`` until the customer database's
    verdict, then ``sold`` or ``released`` (units given back)."""

    taken: list[tuple[Item, int]]
    state: str = "pending"
    since: float = field(default_factory=time.monotonic)


RESERVE_LINE = {"item_id": ITEM_ID, "quantity": QUANTITY}


class ProductDB(Database):
    name = "product database"
    kind = "product_db"

    def __init__(self, first_id: int = 1) -> None:
        super().__init__()
        # self._lock guards items, the indexes and reservations. Invariants:
        # every quantity is >= 0; the indexes list exactly the items of each
        # category, (category, lower-case keyword subset) and seller, each by
        # item_id; a purchase id takes units at most once and gives them back at
        # most once.
        self._items: dict[int, Item] = {}
        self._by_category: dict[int, list[Item]] = {}  # in item_id order
        # category -> keyword set (sorted, lower-case) -> the items having all of those
        # keywords, by item_id: every non-empty subset of each item's keywords (at most
        # 31 lists an item), so a search reads only the items it returns.
        self._by_keywords: dict[int, dict[tuple[str, ...], list[Item]]] = {}
        self._by_seller: dict[int, list[Item]] = {}
        self._reservations: dict[str, Reservation] = {}
        self._votes = Recent(VOTE_TTL)  # vote key -> [item_id, vote, "counted" | "revoked"]
        self._next_id = first_id
        self.ops.update({name: Op(handler, schema, needs_session=False)
                         for name, (handler, schema) in {
            "RegisterItem": (self.register_item, {
                "seller_id": SELLER_ID, "name": ITEM_NAME, "category": CATEGORY,
                "keywords": KEYWORDS, "condition": CONDITION,
                "price": PRICE_CENTS, "quantity": QUANTITY}),
            "ChangePrice": (self.change_price, {"seller_id": SELLER_ID, "item_id": ITEM_ID,
                                               "price": PRICE_CENTS}),
            "RemoveUnits": (self.remove_units, {"seller_id": SELLER_ID, "item_id": ITEM_ID,
                                               "quantity": QUANTITY}),
            "SellerItems": (self.seller_items, {"seller_id": SELLER_ID, "limit": PAGE_LIMIT,
                                                "after": CURSOR}),
            "Search": (self.search, {"category": CATEGORY, "keywords": KEYWORDS,
                                     "limit": SEARCH_LIMIT.inner}),
            "GetItem": (self.get_item, {"item_id": ITEM_ID}),
            "GetItems": (self.get_items, {"item_ids": ListOf(ITEM_ID, 2 * CART_MAX)}),
            "ReserveUnits": (self.reserve_units, {"purchase_id": PURCHASE_ID,
                                                  "lines": ListOf(Record(RESERVE_LINE))}),
            "PendingPurchases": (self.pending_purchases, {"older_than": Int(0, 86_400),
                                                          "limit": Int(1, 10_000)}),
            "SettlePurchases": (self.settle_purchases, {"sold": ListOf(PURCHASE_ID),
                                                        "released": ListOf(PURCHASE_ID)}),
            "AddVote": (self.add_vote, {"item_id": ITEM_ID, "vote": VOTE, "key": UNDO_KEY}),
            "RevokeVote": (self.revoke_vote, {"item_id": ITEM_ID, "vote": VOTE,
                                              "key": UNDO_KEY}),
        }.items()})

    def start(self) -> None:
        threading.Thread(target=self._forget_old_reservations, name="reservation-sweeper",
                         daemon=True).start()

    def _item(self, item_id: int, seller_id: int | None = None) -> Item:
        """The item, checked to belong to ``seller_id`` when given. Hold the lock."""
        item = self._items.get(item_id)
        if item is None:
            raise ApiError("not_found", f"There is no item {item_id}.")
        if seller_id is not None and item.seller_id != seller_id:
            raise ApiError("forbidden", f"Item {item_id} belongs to another seller.")
        return item

    # -- seller side ----------------------------------------------------------

    def register_item(self, request: Request, seller_id: int, name: str, category: int,
                      keywords: list[str], condition: str, price: int, quantity: int) -> dict:
        with self.writing(request):
            item = Item(self._next_id, name, category, keywords, condition, price, quantity,
                        seller_id)
            self._add_item(item)
            self._journal_items([item])
            return {"item_id": item.item_id}

    def _add_item(self, item: Item) -> None:
        """Store a new item and index it. Hold the lock."""
        self._next_id = max(self._next_id, item.item_id + 1)
        self._items[item.item_id] = item
        self._by_category.setdefault(item.category, []).append(item)
        index = self._by_keywords.setdefault(item.category, {})
        words = sorted(item.keyword_set)
        for size in range(1, len(words) + 1):
            for subset in itertools.combinations(words, size):
                index.setdefault(subset, []).append(item)
        self._by_seller.setdefault(item.seller_id, []).append(item)

    def change_price(self, request: Request, seller_id: int, item_id: int,
                     price: int) -> RawResult:
        with self.writing(request):
            item = self._item(item_id, seller_id)
            item.price = price
            self._journal_items([item])
            return item_result(item)

    def remove_units(self, request: Request, seller_id: int, item_id: int,
                     quantity: int) -> RawResult:
        with self.writing(request):
            item = self._item(item_id, seller_id)
            if quantity > item.quantity:
                raise ApiError("conflict", f"Item {item_id} has only {item.quantity} units; "
                                           f"cannot remove {quantity}.")
            item.quantity -= quantity
            self._journal_items([item])
            return item_result(item)

    def seller_items(self, request: Request, seller_id: int, limit: int,
                     after: str | None) -> RawResult:
        """One page of the seller's items, by item_id; ``after`` is the last id shown."""
        last_shown = read_cursor(after, "items", seller_id)
        with self._lock:
            items = self._by_seller.get(seller_id, [])
            start = bisect.bisect_right(items, last_shown, key=lambda item: item.item_id)
            shown = page(items, start, limit, lambda item: len(item.json()))
            more = start + len(shown) < len(items)
            return RawResult(items_result(shown).json[:-1] + b',"next":' + encode_value(
                make_cursor("items", seller_id, shown[-1].item_id) if more else None) + b"}")

    # -- buyer side -----------------------------------------------------------

    def search(self, request: Request, category: int, keywords: list[str],
               limit: int) -> RawResult:
        """Items in stock of ``category``; with keywords, best keyword overlap first."""
        with self._lock:
            if not keywords:
                found = []
                for item in self._by_category.get(category, ()):
                    if item.quantity > 0:
                        found.append(item)
                        if len(found) == limit:
                            break
                return items_result(found)
            return items_result(best_matches(self._by_keywords.get(category, {}),
                                             {word.lower() for word in keywords}, limit))

    def get_item(self, request: Request, item_id: int) -> RawResult:
        with self._lock:
            return item_result(self._item(item_id))

    def get_items(self, request: Request, item_ids: list[int]) -> RawResult:
        """The items that exist among ``item_ids``, in that order."""
        with self._lock:
            return items_result([self._items[i] for i in item_ids if i in self._items])

    def add_vote(self, request: Request, item_id: int, vote: str, key: str) -> dict:
        """Count a vote for the item once per ``key``; nothing once the key is revoked."""
        with self.writing(request):
            item = self._item(item_id)
            if key not in self._votes:
                self._set_vote(key, item, vote, "counted", 1)
            return {}

    def revoke_vote(self, request: Request, item_id: int, vote: str, key: str) -> dict:
        """Undo ``AddVote`` of ``key`` if it was counted, and refuse it from now on.

        A compensation: applied however late (no deadline), and idempotent.
        """
        with self._lock:
            item = self._item(item_id)
            state = self._votes.get(key, [item_id, vote, "absent"])[2]
            if state != "revoked":
                self._set_vote(key, item, vote, "revoked", -1 if state == "counted" else 0)
            return {}

    def _set_vote(self, key: str, item: Item, vote: str, state: str, step: int) -> None:
        """Record a vote key's new state, moving the item's count by ``step``. Hold the lock."""
        if vote == "up":
            item.thumbs_up += step
        else:
            item.thumbs_down += step
        self._votes.put(key, [item.item_id, vote, state])
        self._journal_items([item], vote=[key, item.item_id, vote, state])

    # -- purchases ------------------------------------------------------------

    def reserve_units(self, request: Request, purchase_id: str, lines: list[dict]) -> dict:
        """Take the units of every line, all or nothing, once per ``purchase_id``.

        Returns each line with the name, price (cents) and seller it was sold at.
        The reservation stays pending until ``settle_purchases`` hears the
        customer database's verdict.
        """
        with self.writing(request):
            previous = self._reservations.get(purchase_id)
            if previous is not None:
                if previous.state == "released":
                    raise ApiError("conflict", "This purchase was already cancelled.")
                return {"lines": [_sold_line(item, units) for item, units in previous.taken]}
            wanted: dict[int, int] = {}
            for line in lines:
                wanted[line["item_id"]] = wanted.get(line["item_id"], 0) + line["quantity"]
            taken = [(self._item(item_id), units) for item_id, units in wanted.items()]
            for item, units in taken:
                if item.quantity < units:
                    raise ApiError("conflict", f"Item {item.item_id} ({item.name}) has "
                                               f"{item.quantity} left, fewer than {units}; "
                                               "nothing was bought.")
            for item, units in taken:
                item.quantity -= units
            self._set_reservation(purchase_id, Reservation(taken), taken)
            return {"lines": [_sold_line(item, units) for item, units in taken]}

    def pending_purchases(self, request: Request, older_than: int, limit: int) -> dict:
        """Ids of reservations still pending after ``older_than`` seconds, oldest first."""
        deadline = time.monotonic() - older_than
        with self._lock:
            pending = [(r.since, purchase_id) for purchase_id, r in self._reservations.items()
                       if r.state == "pending" and r.since <= deadline]
        return {"purchase_ids": [purchase_id for _, purchase_id in sorted(pending)[:limit]]}

    def settle_purchases(self, request: Request, sold: list[str], released: list[str]) -> dict:
        """Apply the customer database's verdicts: keep the units sold, give back the released.

        An id never seen is remembered as released, so a late ``ReserveUnits``
        with it takes nothing.
        """
        with self._lock:
            for purchase_id in sold:
                reservation = self._reservations.get(purchase_id)
                if reservation is not None and reservation.state == "pending":
                    self._set_reservation(purchase_id, Reservation(reservation.taken, "sold"))
            for purchase_id in released:
                reservation = self._reservations.get(purchase_id)
                if reservation is None:
                    self._set_reservation(purchase_id, Reservation([], "released"))
                elif reservation.state == "pending":
                    for item, units in reservation.taken:
                        item.quantity += units
                    self._set_reservation(purchase_id, Reservation(reservation.taken, "released"),
                                          reservation.taken)
        return {}

    def _set_reservation(self, purchase_id: str, reservation: Reservation,
                         changed: list[tuple[Item, int]] = ()) -> None:
        """Store a reservation's new state and journal it with the items whose units moved."""
        self._reservations[purchase_id] = reservation
        self._journal_items([item for item, _ in changed], reservation=[
            purchase_id, reservation.state,
            [[item.item_id, units] for item, units in reservation.taken]])

    def _journal_items(self, items: list[Item], **also: list) -> None:
        """Journal the after-images of ``items`` (and a reservation's or vote key's new state)."""
        if self.journaling:
            self.record({"items": [item.raw() for item in items], **also})

    def _forget_old_reservations(self) -> None:
        """Drop settled reservations after ``RESERVATION_TTL``; pending ones wait for a verdict."""
        while True:
            time.sleep(RESERVATION_TTL / 10)
            deadline = time.monotonic() - RESERVATION_TTL
            with self._lock:
                old = [purchase_id for purchase_id, r in self._reservations.items()
                       if r.state != "pending" and r.since < deadline]
                for purchase_id in old:
                    del self._reservations[purchase_id]

    # -- durability: records are after-images of what a change touched ---------

    def apply(self, change: dict) -> None:
        for raw in change["items"]:
            item = self._items.get(raw["item_id"])
            if item is None:
                self._add_item(Item(**raw))
            else:
                item.price, item.quantity = raw["price"], raw["quantity"]
                item.thumbs_up, item.thumbs_down = raw["thumbs_up"], raw["thumbs_down"]
        if "reservation" in change:
            purchase_id, state, lines = change["reservation"]
            self._reservations[purchase_id] = Reservation(
                [(self._items[item_id], units) for item_id, units in lines], state)
        if "vote" in change:
            key, item_id, vote, state = change["vote"]
            self._votes.put(key, [item_id, vote, state])

    def dump(self) -> Any:
        return {"items": [item.raw() for item in self._items.values()],
                "reservations": [[purchase_id, r.state,
                                  [[item.item_id, units] for item, units in r.taken]]
                                 for purchase_id, r in self._reservations.items()],
                "votes": [[key, *entry] for key, entry in self._votes.items()]}

    def restore(self, state: Any) -> None:
        self.apply({"items": state["items"]})
        for reservation in state["reservations"]:
            self.apply({"items": [], "reservation": reservation})
        for vote in state.get("votes", []):
            self.apply({"items": [], "vote": vote})


def best_matches(index: dict[tuple[str, ...], list[Item]], words: set[str],
                 limit: int) -> list[Item]:
    """The ``limit`` items in stock sharing the most of ``words``, ties by item_id.

    ``index`` maps each keyword set to its items by id (see ``ProductDB._by_keywords``).
    Level by level, from all of ``words`` down to one: the items sharing exactly that
    many are those of the lists of that many words, merged by id, less those sharing
    more (taken at a higher level). It stops at ``limit``, so it reads about ``limit``
    items per level, not every match.
    """
    found: list[Item] = []
    ordered = sorted(words)
    for size in range(len(ordered), 0, -1):
        lists = [index.get(subset, ()) for subset in itertools.combinations(ordered, size)]
        for item in heapq.merge(*lists, key=lambda item: item.item_id):
            if item.quantity > 0 and len(item.keyword_set & words) == size:
                found.append(item)
                if len(found) == limit:
                    return found
    return found


def _sold_line(item: Item, units: int) -> dict:
    return {"item_id": item.item_id, "name": item.name, "quantity": units,
            "price": item.price, "seller_id": item.seller_id}


def main(argv: list[str] | None = None) -> None:
    parser = database_parser("Product database: items, prices, units, item feedback.",
                             "PRODUCT_DB", 9001)
    args = parser.parse_args(argv)
    database_main(ProductDB(first_id(args)), args)


if __name__ == "__main__":
    main()
