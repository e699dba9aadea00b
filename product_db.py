"""Product database service: items, prices, units, item votes, reservations.

Internal ops (``market.product.api``), spoken only by the frontends, over three
aggregates: the ``Catalog`` of items (``market.product.catalog``), the ``Reservations``
of purchases (``market.product.reservations``) and the ``ItemVotes`` (``market.product.votes``).
A seller's writes are keyed (``Database.keyed_write``): each key is applied once
per seller and a resend gets the first reply. The writes of a purchase
and a vote carry their own key (a purchase id, a vote key): ``ReserveUnits`` and
``RecordVote`` apply once per key (a resend gets the first outcome, however late),
and their settling (``SettleReservations`` by the customer database's verdict;
``ResolveVotes``, the verdict decided here) is idempotent, so a late original after
it changes nothing.

Every change is one intent record passed to ``Database.change``, applied by the
method ``self.appliers`` names for its kind, live and on replay alike.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from market.config import DEFAULT_PRODUCT_DB_PORT, FEED_PAGE, RESERVATION_TTL
from market.database.service import Database, database_main, database_parser
from market.net.service import Request
from market.product import api
from market.product.catalog import Catalog, Item, item_result
from market.product.reservations import Reservations, ReservationState, Taken
from market.product.votes import ItemVotes, VoteState
from protocol import ApiError, RawResult, encode_value


class ProductDB(Database):
    name = "product database"
    kind = "product_db"

    def __init__(self) -> None:
        super().__init__()
        # self._lock guards all three (each one's invariants are in its own docstring).
        self._catalog = Catalog()
        self._reservations = Reservations()
        self._votes = ItemVotes()
        self.serve({
            api.REGISTER_ITEM: self.register_item,
            api.CHANGE_PRICE: self.change_price,
            api.REMOVE_UNITS: self.remove_units,
            api.SELLER_ITEMS: self.seller_items,
            api.SEARCH: self.search,
            api.GET_ITEM: self.get_item,
            api.GET_ITEMS: self.get_items,
            api.RESERVE_UNITS: self.reserve_units,
            api.HELD_RESERVATIONS: self.held_reservations,
            api.SETTLE_RESERVATIONS: self.settle_reservations,
            api.RECORD_VOTE: self.record_vote,
            api.RESOLVE_VOTES: self.resolve_votes,
        })
        self.appliers.update({
            "item_registered": self._apply_item_registered,
            "price_changed": self._apply_price_changed,
            "units_removed": self._apply_units_removed,
            "units_reserved": self._apply_units_reserved,
            "reservations_settled": self._apply_reservations_settled,
            "vote_recorded": self._apply_vote_recorded,
            "votes_refused": lambda r: self._votes.refuse(r["keys"]),
        })

    def start(self) -> None:
        threading.Thread(target=self._forget_old, name="sweeper", daemon=True).start()

    def data_stats(self) -> dict:
        """How much data this database holds."""
        with self._lock:
            return {"items": len(self._catalog),
                    "pending_purchases": self._reservations.held_count()}

    # -- a seller's items -------------------------------------------------------

    def register_item(self, request: Request, key: str, fingerprint: str,
                      **item: Any) -> RawResult:
        def write(keyed: dict) -> None:
            item_id = self._catalog.next_id
            self.change({"kind": "item_registered", "item_id": item_id, **item, "keyed": keyed})
        return self._seller_write(request, item["seller_id"], key, fingerprint, write)

    def change_price(self, request: Request, seller_id: int, item_id: int, price: int,
                     key: str, fingerprint: str) -> RawResult:
        def write(keyed: dict) -> None:
            self._catalog.get(item_id, seller_id)
            self.change({"kind": "price_changed", "item_id": item_id, "price": price,
                         "keyed": keyed})
        return self._seller_write(request, seller_id, key, fingerprint, write)

    def remove_units(self, request: Request, seller_id: int, item_id: int, quantity: int,
                     key: str, fingerprint: str) -> RawResult:
        def write(keyed: dict) -> None:
            item = self._catalog.get(item_id, seller_id)
            if quantity > item.quantity:
                raise ApiError("conflict", f"Item {item_id} has only {item.quantity} units; "
                                           f"cannot remove {quantity}.")
            self.change({"kind": "units_removed", "item_id": item_id, "quantity": quantity,
                         "keyed": keyed})
        return self._seller_write(request, seller_id, key, fingerprint, write)

    def _seller_write(self, request: Request, seller_id: int, key: str, print_: str,
                      write: Callable[[dict], None]) -> RawResult:
        """``write`` once per ``key`` of the seller: the reply is the first outcome, kept
        as JSON text by the record's applier."""
        with self._lock:
            return RawResult(self.keyed_write(request, f"seller:{seller_id}", key, print_,
                                              write).encode())

    def seller_items(self, request: Request, seller_id: int, limit: int,
                     after: str | None) -> RawResult:
        with self._lock:
            return self._catalog.seller_items(seller_id, limit, after)

    # -- reading items (each frontend answers these from its copy while it is fresh) ----

    def search(self, request: Request, category: int, keywords: list[str],
               limit: int) -> RawResult:
        with self._lock:
            return self._catalog.search(category, keywords, limit)

    def get_item(self, request: Request, item_id: int) -> RawResult:
        with self._lock:
            return self._catalog.item(item_id)

    def get_items(self, request: Request, item_ids: list[int]) -> RawResult:
        with self._lock:
            return self._catalog.cart_items(item_ids)

    def followed_page(self, after: int) -> tuple[list[dict], int | None]:
        """The frontends' copies follow the catalog (``market.replication.feed``)."""
        return self._catalog.feed_page(after, FEED_PAGE)

    # -- reservations -------------------------------------------------------------

    def reserve_units(self, request: Request, purchase_id: str, lines: list[dict]) -> dict:
        """Take the units of every line, all or nothing, once per ``purchase_id``.

        Returns each line with the name, price (cents) and seller it was sold at.
        The reservation stays held until ``settle_reservations`` hears the
        customer database's verdict. A resend gets the first outcome, however late.
        """
        with self._lock:
            if self._reservations.get(purchase_id) is None:
                request.check_deadline()
                wanted: dict[int, int] = {}
                for line in lines:
                    wanted[line["item_id"]] = wanted.get(line["item_id"], 0) + line["quantity"]
                for item_id in wanted:
                    self._catalog.get(item_id)
                self.change({"kind": "units_reserved", "purchase_id": purchase_id, "lines": [
                    {"item_id": item_id, "quantity": units} for item_id, units in wanted.items()]})
            reservation = self._reservations.get(purchase_id)
            if reservation.state is ReservationState.RELEASED:
                raise ApiError("conflict", "This purchase was already cancelled.")
            return {"lines": [line.sold_line() for line in reservation.taken]}

    def held_reservations(self, request: Request, older_than: int, limit: int) -> dict:
        """Ids of reservations held ``older_than`` seconds or more, oldest first."""
        with self._lock:
            return {"purchase_ids": self._reservations.held_longer_than(older_than, limit)}

    def settle_reservations(self, request: Request, sold: list[str],
                            released: list[str]) -> dict:
        """Apply the customer database's verdicts: keep the units sold, give back the released.

        Idempotent; refused once its deadline has passed, like every request (the
        settling thread sends it again).
        """
        with self.writing(request):
            sold, released = self._reservations.settling(sold, released)
            if sold or released:
                self.change({"kind": "reservations_settled", "sold": sold, "released": released})
        return {}

    def _forget_old(self) -> None:
        """Forever: forget settled reservations and the outcomes of keys past their time."""
        while True:
            time.sleep(RESERVATION_TTL / 10)
            with self._lock:
                self._reservations.forget_settled(RESERVATION_TTL)
                self.outcomes.forget_expired()

    # -- votes ----------------------------------------------------------------------

    def record_vote(self, request: Request, item_id: int, vote: str, key: str) -> dict:
        """Count a vote for the item once per ``key``; ``counted`` false once the key was
        refused. A key with a verdict is answered however late."""
        with self._lock:
            if self._votes.state(key) is None:
                request.check_deadline()
                self._catalog.get(item_id)
                self.change({"kind": "vote_recorded", "key": key, "item_id": item_id,
                             "vote": vote})
            return {"counted": self._votes.state(key) is VoteState.COUNTED}

    def resolve_votes(self, request: Request, keys: list[str]) -> dict:
        """The verdict on vote keys: counted ones stay counted; every other is refused from
        now on (a late ``RecordVote`` with it counts nothing)."""
        with self.writing(request):
            fresh = [key for key in keys if self._votes.state(key) is None]
            if fresh:
                self.change({"kind": "votes_refused", "keys": fresh})
            counted = [key for key in keys if self._votes.state(key) is VoteState.COUNTED]
        return {"counted": counted, "refused": [key for key in keys if key not in counted]}

    # -- durability: each record kind and the method that applies it ------------------

    def _apply_item_registered(self, r: dict) -> None:
        item = Item(r["item_id"], r["name"], r["category"], r["keywords"], r["condition"],
                    r["price"], r["quantity"], r["seller_id"])
        self._catalog.add(item)
        self.feed.publish(item.raw())
        self.outcomes.keep(r, encode_value({"item_id": r["item_id"]}).decode())

    def _apply_price_changed(self, r: dict) -> None:
        self._catalog[r["item_id"]].price = r["price"]
        self._item_changed(r)

    def _apply_units_removed(self, r: dict) -> None:
        self._catalog[r["item_id"]].quantity -= r["quantity"]
        self._item_changed(r)

    def _publish(self, items: list[Item]) -> None:
        """Send the items' new states to the frontends' copies (``market.replication.feed``)."""
        for item in items:
            self.feed.publish(item.state())

    def _item_changed(self, r: dict) -> None:
        """Publish the changed item; a keyed change's outcome: the item as it is after the
        change (reply JSON text)."""
        item = self._catalog[r["item_id"]]
        self._publish([item])
        if "keyed" in r:
            self.outcomes.keep(r, item_result(item).json.decode())

    def _apply_units_reserved(self, r: dict) -> None:
        taken = [Taken(self._catalog[line["item_id"]], line["quantity"]) for line in r["lines"]]
        self._reservations.hold(r["purchase_id"], taken)
        self._publish([line.item for line in taken])

    def _apply_reservations_settled(self, r: dict) -> None:
        self._reservations.settle(r["sold"], r["released"])
        self._publish([line.item for purchase_id in r["released"]
                       for line in self._reservations.get(purchase_id).taken])

    def _apply_vote_recorded(self, r: dict) -> None:
        item = self._catalog[r["item_id"]]
        self._votes.record(r["key"], item, r["vote"])
        self._publish([item])

    def dump(self) -> Any:
        return {"items": [item.raw() for item in self._catalog.all()],
                "reservations": self._reservations.dump(),
                "votes": self._votes.dump()}

    def restore(self, state: Any) -> None:
        for raw in state["items"]:
            self._catalog.add(Item(**raw))
        self._reservations.restore(state["reservations"], self._catalog.__getitem__)
        self._votes.restore(state["votes"])


def main(argv: list[str] | None = None) -> None:
    parser = database_parser("Product database: items, prices, units, item votes.",
                             "PRODUCT_DB", DEFAULT_PRODUCT_DB_PORT)
    args = parser.parse_args(argv)
    database_main(ProductDB(), args)


if __name__ == "__main__":
    main()
