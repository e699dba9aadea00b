"""Product database service: items, prices, units, item feedback, unit reservations.

Internal ops, spoken only by the frontends. Items travel in the spec's form
(price in dollars); reservations report prices in integer cents.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from protocol import (ApiError, Database, Int, ITEM_ID, Keywords, ListOf, OneOf, Op,
                      PRICE_CENTS, PURCHASE_ID, QUANTITY, Record, Request, Str, VOTE,
                      database_main, database_parser)

RESERVATION_TTL = 600.0  # seconds a purchase id is remembered, so that retries stay harmless


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

    def view(self) -> dict:
        """The item as every reply shows it."""
        return {"item_id": self.item_id, "name": self.name, "category": self.category,
                "keywords": list(self.keywords), "condition": self.condition,
                "price": self.price / 100, "quantity": self.quantity,
                "seller_id": self.seller_id, "thumbs_up": self.thumbs_up,
                "thumbs_down": self.thumbs_down}


SELLER_ID = Int(1)
RESERVE_LINE = {"item_id": ITEM_ID, "quantity": QUANTITY}


class ProductDB(Database):
    name = "product database"

    def __init__(self) -> None:
        super().__init__()
        # self._lock guards items, the indexes and reservations. Invariants:
        # every quantity is >= 0; the indexes list exactly the items of each
        # category, (category, lower-case keyword) and seller; a purchase id
        # takes units at most once and gives them back at most once.
        self._items: dict[int, Item] = {}
        self._by_category: dict[int, list[Item]] = {}  # in item_id order
        self._by_keyword: dict[tuple[int, str], list[Item]] = {}
        self._by_seller: dict[int, list[Item]] = {}
        self._reservations: dict[str, tuple[float, list[tuple[Item, int]] | None]] = {}
        self._next_id = 1
        self.ops = {name: Op(handler, schema, needs_session=False) for name, (handler, schema) in {
            "RegisterItem": (self.register_item, {
                "seller_id": SELLER_ID, "name": Str(1, 32), "category": Int(0, 99),
                "keywords": Keywords(), "condition": OneOf(("new", "used")),
                "price": PRICE_CENTS, "quantity": QUANTITY}),
            "ChangePrice": (self.change_price, {"seller_id": SELLER_ID, "item_id": ITEM_ID,
                                               "price": PRICE_CENTS}),
            "RemoveUnits": (self.remove_units, {"seller_id": SELLER_ID, "item_id": ITEM_ID,
                                               "quantity": QUANTITY}),
            "SellerItems": (self.seller_items, {"seller_id": SELLER_ID}),
            "Search": (self.search, {"category": Int(0, 99), "keywords": Keywords(),
                                     "limit": Int(1, 500)}),
            "GetItem": (self.get_item, {"item_id": ITEM_ID}),
            "GetItems": (self.get_items, {"item_ids": ListOf(ITEM_ID)}),
            "ReserveUnits": (self.reserve_units, {"purchase_id": PURCHASE_ID,
                                                  "lines": ListOf(Record(RESERVE_LINE))}),
            "ReleaseUnits": (self.release_units, {"purchase_id": PURCHASE_ID}),
            "AddVote": (self.add_vote, {"item_id": ITEM_ID, "vote": VOTE}),
        }.items()}

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
        with self._lock:
            item = Item(self._next_id, name, category, keywords, condition, price, quantity,
                        seller_id)
            self._add_item(item)
            self.record({"items": [asdict(item)]})
            return {"item_id": item.item_id}

    def _add_item(self, item: Item) -> None:
        """Store a new item and index it. Hold the lock."""
        self._next_id = max(self._next_id, item.item_id + 1)
        self._items[item.item_id] = item
        self._by_category.setdefault(item.category, []).append(item)
        for word in item.keywords:
            self._by_keyword.setdefault((item.category, word.lower()), []).append(item)
        self._by_seller.setdefault(item.seller_id, []).append(item)

    def change_price(self, request: Request, seller_id: int, item_id: int, price: int) -> dict:
        with self._lock:
            item = self._item(item_id, seller_id)
            item.price = price
            self.record({"items": [asdict(item)]})
            return {"item": item.view()}

    def remove_units(self, request: Request, seller_id: int, item_id: int,
                     quantity: int) -> dict:
        with self._lock:
            item = self._item(item_id, seller_id)
            if quantity > item.quantity:
                raise ApiError("conflict", f"Item {item_id} has only {item.quantity} units; "
                                           f"cannot remove {quantity}.")
            item.quantity -= quantity
            self.record({"items": [asdict(item)]})
            return {"item": item.view()}

    def seller_items(self, request: Request, seller_id: int) -> dict:
        with self._lock:
            return {"items": [item.view() for item in self._by_seller.get(seller_id, ())]}

    # -- buyer side -----------------------------------------------------------

    def search(self, request: Request, category: int, keywords: list[str], limit: int) -> dict:
        """Items in stock of ``category``; with keywords, best keyword overlap first."""
        with self._lock:
            if not keywords:
                found = []
                for item in self._by_category.get(category, ()):
                    if item.quantity > 0:
                        found.append(item.view())
                        if len(found) == limit:
                            break
                return {"items": found}
            shared: dict[int, int] = {}
            for word in keywords:
                for item in self._by_keyword.get((category, word.lower()), ()):
                    if item.quantity > 0:
                        shared[item.item_id] = shared.get(item.item_id, 0) + 1
            best = sorted(shared, key=lambda item_id: (-shared[item_id], item_id))[:limit]
            return {"items": [self._items[item_id].view() for item_id in best]}

    def get_item(self, request: Request, item_id: int) -> dict:
        with self._lock:
            return {"item": self._item(item_id).view()}

    def get_items(self, request: Request, item_ids: list[int]) -> dict:
        """The items that exist among ``item_ids``, in that order."""
        with self._lock:
            return {"items": [self._items[i].view() for i in item_ids if i in self._items]}

    def add_vote(self, request: Request, item_id: int, vote: str) -> dict:
        with self._lock:
            item = self._item(item_id)
            if vote == "up":
                item.thumbs_up += 1
            else:
                item.thumbs_down += 1
            self.record({"items": [asdict(item)]})
            return {}

    # -- purchases ------------------------------------------------------------

    def reserve_units(self, request: Request, purchase_id: str, lines: list[dict]) -> dict:
        """Take the units of every line, all or nothing, once per ``purchase_id``.

        Returns each line with the name, price (cents) and seller it was sold at.
        """
        with self._lock:
            previous = self._reservations.get(purchase_id)
            if previous is not None:
                taken = previous[1]
                if taken is None:
                    raise ApiError("conflict", "This purchase was already cancelled.")
                return {"lines": [_sold_line(item, units) for item, units in taken]}
            wanted: dict[int, int] = {}
            for line in lines:
                wanted[line["item_id"]] = wanted.get(line["item_id"], 0) + line["quantity"]
            items = [(self._item(item_id), units) for item_id, units in wanted.items()]
            for item, units in items:
                if item.quantity < units:
                    raise ApiError("conflict", f"Item {item.item_id} ({item.name}) has only "
                                               f"{item.quantity} units left; nothing was bought.")
            for item, units in items:
                item.quantity -= units
            self._reservations[purchase_id] = (time.monotonic(), items)
            self.record({"items": [asdict(item) for item, _ in items],
                         "reservation": [purchase_id, [[i.item_id, u] for i, u in items]]})
            return {"lines": [_sold_line(item, units) for item, units in items]}

    def release_units(self, request: Request, purchase_id: str) -> dict:
        """Give back what ``reserve_units`` took; an unknown id is remembered as cancelled."""
        with self._lock:
            previous = self._reservations.get(purchase_id)
            given_back = previous[1] if previous is not None and previous[1] else []
            for item, units in given_back:
                item.quantity += units
            self._reservations[purchase_id] = (time.monotonic(), None)
            self.record({"items": [asdict(item) for item, _ in given_back],
                         "reservation": [purchase_id, None]})
            return {}

    def _forget_old_reservations(self) -> None:
        while True:
            time.sleep(RESERVATION_TTL / 10)
            deadline = time.monotonic() - RESERVATION_TTL
            with self._lock:
                old = [p for p, (at, _) in self._reservations.items() if at < deadline]
                for purchase_id in old:
                    del self._reservations[purchase_id]


    # -- durability: records are after-images of the items a change touched ----

    def apply(self, change: dict) -> None:
        for raw in change["items"]:
            item = self._items.get(raw["item_id"])
            if item is None:
                self._add_item(Item(**raw))
            else:
                item.price, item.quantity = raw["price"], raw["quantity"]
                item.thumbs_up, item.thumbs_down = raw["thumbs_up"], raw["thumbs_down"]
        if "reservation" in change:
            purchase_id, lines = change["reservation"]
            taken = None if lines is None else [(self._items[i], u) for i, u in lines]
            self._reservations[purchase_id] = (time.monotonic(), taken)

    def dump(self) -> Any:
        return {"items": [asdict(item) for item in self._items.values()],
                "reservations": [[purchase_id, None if taken is None else
                                  [[item.item_id, units] for item, units in taken]]
                                 for purchase_id, (_, taken) in self._reservations.items()]}

    def restore(self, state: Any) -> None:
        self.apply({"items": state["items"]})
        for reservation in state["reservations"]:
            self.apply({"items": [], "reservation": reservation})


def _sold_line(item: Item, units: int) -> dict:
    return {"item_id": item.item_id, "name": item.name, "quantity": units,
            "price": item.price, "seller_id": item.seller_id}


def main(argv: list[str] | None = None) -> None:
    parser = database_parser("Product database: items, prices, units, item feedback.",
                             "PRODUCT_DB", 9001)
    database_main(ProductDB(), parser.parse_args(argv))


if __name__ == "__main__":
    main()
