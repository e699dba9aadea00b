"""Product database service (default port 9001): items, prices, units, item votes.

Internal ops, spoken only by the frontends, declared in ``market.product.api``, over
``market.product.data.ProductData``: the ``Catalog`` of items, the ``Reservations`` of
purchases and the ``ItemVotes``. A seller's writes are keyed (``Database.keyed_write``):
each key is applied once per seller and a resend gets the first reply. The writes of a
purchase and a vote carry their own key (a purchase id, a vote key): ``ReserveUnits`` and
``CountVote`` apply once per key (a resend gets the first outcome, however late), and their
settling (``SettleReservations`` by the customer database's verdict; ``ResolveVotes``, the
verdict decided here) is idempotent, so a late original after it changes nothing.

Each handler checks under the database's lock, then makes its change as one record
(``Database.change``); a write returns what its reply acknowledges (``Acknowledged``), so
the reply leaves once every frontend's copy shows the item as changed.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from market.config import DEFAULT_PRODUCT_DB_PORT, RESERVATION_TTL
from market.database.main import database_main, database_parser
from market.database.service import Database
from market.keys import read_vote_key
from market.net.service import Request
from market.product import api
from market.product.data import ProductData, reserved
from market.product.reservations import ReservationState
from market.product.votes import Verdict
from market.replication.feed import Acknowledged
from protocol import ApiError, RawResult


class ProductDB(Database):
    name = "product database"
    kind = "product_db"

    def __init__(self) -> None:
        super().__init__()
        self.add_ops({
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
            api.COUNT_VOTE: self.count_vote,
            api.RESOLVE_VOTES: self.resolve_votes,
        })

    def make_data(self, publish: Callable[[dict], int]) -> ProductData:
        return ProductData(publish)

    def start(self) -> None:
        super().start()
        threading.Thread(target=self._forget_old, name="sweeper", daemon=True).start()

    def _forget_old(self) -> None:
        """Forever: forget settled reservations and the outcomes of keys past their time."""
        while True:
            time.sleep(RESERVATION_TTL / 10)
            with self.lock:
                self.data.reservations.forget_settled(RESERVATION_TTL)
                self.outcomes.forget_expired()

    # -- a seller's items ---------------------------------------------------------------------

    def register_item(self, request: Request, key: str, fingerprint: str,
                      **item: Any) -> Acknowledged:
        def write(keyed: dict) -> Acknowledged:
            return self.change({"kind": "item_registered",
                                "item_id": self.data.catalog.next_id, **item, "keyed": keyed})
        return self._seller_write(request, item["seller_id"], key, fingerprint, write)

    def change_price(self, request: Request, seller_id: int, item_id: int, price: int,
                     key: str, fingerprint: str) -> Acknowledged:
        def write(keyed: dict) -> Acknowledged:
            self.data.catalog.get(item_id, seller_id)
            return self.change({"kind": "price_changed", "item_id": item_id, "price": price,
                                "keyed": keyed})
        return self._seller_write(request, seller_id, key, fingerprint, write)

    def remove_units(self, request: Request, seller_id: int, item_id: int, quantity: int,
                     key: str, fingerprint: str) -> Acknowledged:
        def write(keyed: dict) -> Acknowledged:
            item = self.data.catalog.get(item_id, seller_id)
            if quantity > item.quantity:
                raise ApiError("conflict", f"Item {item_id} has only {item.quantity} units; "
                                           f"cannot remove {quantity}.")
            return self.change({"kind": "units_removed", "item_id": item_id,
                                "quantity": quantity, "keyed": keyed})
        return self._seller_write(request, seller_id, key, fingerprint, write)

    def _seller_write(self, request: Request, seller_id: int, key: str, fingerprint: str,
                      write: Callable[[dict], Acknowledged]) -> Acknowledged:
        """``write`` once per ``key`` of the seller; the outcome is reply JSON text (kept
        with the key as text, so that snapshots hold it as it was sent)."""
        with self.lock:
            done = self.keyed_write(request, f"seller:{seller_id}", key, fingerprint, write)
        return done._replace(result=RawResult(done.result.encode()))

    def seller_items(self, request: Request, seller_id: int, limit: int,
                     after: str | None) -> RawResult:
        with self.lock:
            return self.data.catalog.seller_items(seller_id, limit, after)

    # -- reading items (each frontend answers these from its copy while it is fresh) ----------

    def search(self, request: Request, category: int, keywords: list[str],
               limit: int) -> RawResult:
        with self.lock:
            return self.data.catalog.search(category, keywords, limit)

    def get_item(self, request: Request, item_id: int) -> RawResult:
        with self.lock:
            return self.data.catalog.item(item_id)

    def get_items(self, request: Request, item_ids: list[int]) -> RawResult:
        with self.lock:
            return self.data.catalog.cart_items(item_ids)

    # -- reservations ---------------------------------------------------------------------------

    def reserve_units(self, request: Request, purchase_id: str,
                      lines: list[dict]) -> Acknowledged:
        """Take the units of every line, all or nothing, once per ``purchase_id``.

        Returns each line with the name, price (cents) and seller it was sold at. The
        reservation stays held until ``settle_reservations`` hears the customer database's
        verdict. A resend gets the first outcome ``again``, however late.
        """
        with self.lock:
            reservation = self.data.reservations.get(purchase_id)
            if reservation is not None:
                if reservation.state is ReservationState.CANCELLED:
                    raise ApiError("conflict", "This purchase was already cancelled.")
                return self.again(reserved(reservation))
            request.check_deadline()
            wanted: dict[int, int] = {}
            for line in lines:
                wanted[line["item_id"]] = wanted.get(line["item_id"], 0) + line["quantity"]
            for item_id in wanted:
                self.data.catalog.get(item_id)
            return self.change({"kind": "units_reserved", "purchase_id": purchase_id, "lines": [
                {"item_id": item_id, "quantity": units} for item_id, units in wanted.items()]})

    def held_reservations(self, request: Request, older_than: int, limit: int) -> dict:
        """Ids of reservations held ``older_than`` seconds or more, oldest first."""
        with self.lock:
            return {"purchase_ids": self.data.reservations.held_longer_than(older_than, limit)}

    def settle_reservations(self, request: Request, committed: list[str],
                            cancelled: list[str]) -> Acknowledged:
        """Apply the customer database's verdicts: keep the units of the committed purchases,
        give back those of the cancelled ones.

        Idempotent (verdicts applied already are acknowledged ``again``); refused once its
        deadline has passed, like every request (the settling thread sends it again).
        """
        with self.writing(request):
            committed, cancelled = self.data.reservations.settling(committed, cancelled)
            if committed or cancelled:
                return self.change({"kind": "reservations_settled", "sold": committed,
                                    "released": cancelled})
            return self.again({})

    # -- votes ------------------------------------------------------------------------------------

    def count_vote(self, request: Request, item_id: int, vote: str, key: str) -> Acknowledged:
        """Count a vote for the item once per ``key``; ``committed`` false once the key was
        cancelled. A key with a verdict is answered ``again``, however late."""
        with self.lock:
            state = self.data.votes.state(key)
            if state is not None:
                return self.again({"committed": state is Verdict.COMMITTED})
            request.check_deadline()
            self.data.catalog.get(item_id)
            named = read_vote_key(key)
            if named is not None and named[1] != item_id:
                raise ApiError("bad_request", f"Vote key {key} is not for item {item_id}.")
            return self.change({"kind": "vote_recorded", "key": key, "item_id": item_id,
                                "vote": vote})

    def resolve_votes(self, request: Request, keys: list[str]) -> Acknowledged:
        """The verdict on vote keys: committed ones stay committed; every other is cancelled
        from now on (a late ``CountVote`` with it counts nothing). The reply tells counts made
        earlier, so it acknowledges every change so far (``again``)."""
        with self.writing(request):
            fresh = [key for key in keys if self.data.votes.state(key) is None]
            if fresh:
                self.change({"kind": "votes_refused", "keys": fresh})
            committed = [key for key in keys
                         if self.data.votes.state(key) is Verdict.COMMITTED]
            return self.again({"committed": committed,
                               "cancelled": [key for key in keys if key not in committed]})


def main(argv: list[str] | None = None) -> None:
    parser = database_parser("Product database: items, prices, units, item votes.",
                             "PRODUCT_DB", DEFAULT_PRODUCT_DB_PORT)
    args = parser.parse_args(argv)
    database_main(ProductDB(), args)


if __name__ == "__main__":
    main()
