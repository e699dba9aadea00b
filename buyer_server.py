"""Buyer frontend (default port 8002): stateless, every request goes to the databases.

``MakePurchase`` spans both databases; see ``BuyerFrontend.make_purchase``.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import logging
import secrets
import threading
import time

from market import customer_api, product_api
from market.client import Client, NoAnswer
from market.config import (CART_MAX, DEFAULT_BUYER_FRONTEND_PORT, DEFAULT_SETTLE_AFTER,
                           UNDO_RETRY_FOR)
from market.dbapi import InternalOp
from market.fields import (CATEGORY, ITEM_ID, KEYWORDS, QUANTITY, SEARCH_LIMIT, SELLER_ID, VOTE,
                           card_problem, dollars)
from market.frontend import Frontend, PasswordHasher, frontend_main
from market.identity import NotOneMarket
from market.paging import CURSOR, PAGE_LIMIT, page_args
from market.server import Op, Request, env_default
from protocol import MAX_LINE, ApiError, Omittable, RawResult, Str

log = logging.getLogger("market.buyer_server")

SETTLE_BATCH = 1000  # purchase ids per settling round trip (well under 1 MiB)

# Only the type is checked here: any string the card check refuses is ``conflict``
# ("card rejected"), as the contract says, not ``bad_request``.
ANY_STRING = Str(0, MAX_LINE, no_control=False)
CARD_FIELDS = {"card_name": ANY_STRING, "card_number": ANY_STRING, "expiry": ANY_STRING}


class BuyerFrontend(Frontend):
    name = "buyer frontend"
    role = kind = "buyer"
    settle_after = DEFAULT_SETTLE_AFTER
    commit_delay = 0.0

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        env_default(parser, "--settle-after", "SETTLE_AFTER", cls.settle_after,
                    "seconds after which an unfinished purchase is completed or undone",
                    type=int)
        parser.add_argument("--test-commit-delay", type=float, default=0.0, metavar="SECONDS",
                            help="for tests: pause this long between taking a purchase's "
                                 "units and recording it (default 0)")

    def __init__(self, customer_db: Client, product_db: Client,
                 hasher: PasswordHasher | None = None) -> None:
        super().__init__(customer_db, product_db, hasher)
        # Undos (compensations) that did not get through, retried by the settling
        # thread: (first try, database client, op, args). Guarded by its own lock.
        self._undo_lock = threading.Lock()
        self._undos: collections.deque[tuple[float, Client, InternalOp | str, dict]] = \
            collections.deque()

    def configure(self, args: argparse.Namespace) -> None:
        self.settle_after = max(1, args.settle_after)
        self.commit_delay = args.test_commit_delay

    def role_ops(self) -> dict[str, Op]:
        cart_line = {"item_id": ITEM_ID, "quantity": QUANTITY}
        return {
            "SearchItemsForSale": Op(self.search, {
                "category": CATEGORY, "keywords": Omittable(KEYWORDS, []),
                "limit": SEARCH_LIMIT}),
            "GetItem": Op(self.get_item, {"item_id": ITEM_ID}),
            "AddItemToCart": Op(self.add_to_cart, cart_line, keyed=True),
            "RemoveItemFromCart": Op(self.cart_write(customer_api.REMOVE_FROM_CART), cart_line,
                                     keyed=True),
            "SaveCart": Op(self.cart_write(customer_api.SAVE_CART), keyed=True),
            "ClearCart": Op(self.cart_write(customer_api.CLEAR_CART), keyed=True),
            "DisplayCart": Op(self.display_cart),
            "MakePurchase": Op(self.make_purchase, CARD_FIELDS, keyed=True),
            "ProvideFeedback": Op(self.provide_feedback, {"item_id": ITEM_ID, "vote": VOTE},
                                  keyed=True),
            "GetSellerRating": Op(self.seller_rating, {"seller_id": SELLER_ID}),
            "GetBuyerPurchases": Op(self.purchases, {"limit": PAGE_LIMIT, "after": CURSOR}),
        }

    # -- items ----------------------------------------------------------------

    def search(self, request: Request, category: int, keywords: list[str],
               limit: int) -> RawResult:
        self.user_id(request)
        return self.product.call_raw(product_api.SEARCH, {
            "category": category, "keywords": keywords, "limit": limit})

    def get_item(self, request: Request, item_id: int) -> RawResult:
        self.user_id(request)
        return self.product.call_raw(product_api.GET_ITEM, {"item_id": item_id})

    # -- carts ----------------------------------------------------------------

    def add_to_cart(self, request: Request, item_id: int, quantity: int) -> dict:
        """Three round trips: the item's units, the checked (keyed) write, the cart's items.

        The session is checked by the write, so an unknown item is ``not_found``
        even for a bad session (items are public through search anyway).
        """
        item = self.product.call(product_api.GET_ITEM, {"item_id": item_id})["item"]
        args = {"item_id": item_id, "quantity": quantity}
        result = self.customer.call(customer_api.ADD_TO_CART, {
            **args, "available": item["quantity"], **self.keyed(request, args)},
            request.session)
        return self.changed_cart(request, result["cart"])

    def cart_write(self, db_op: InternalOp):
        """A handler that makes ``db_op``'s change to the session's cart (keyed) and shows
        the cart."""
        def handler(request: Request, **args: object) -> dict:
            result = self.customer.call(db_op, {**args, **self.keyed(request, args)},
                                        request.session)
            return self.changed_cart(request, result["cart"])
        return handler

    def display_cart(self, request: Request) -> dict:
        return {"cart": self.render_cart(
            self.customer.call(customer_api.GET_CART, {}, request.session)["cart"])}

    def changed_cart(self, request: Request, lines: list[list[int]]) -> dict:
        """The reply to a cart change that was made: the cart, or ``deadline_exceeded`` if
        the product database cannot name its items now (never ``unavailable``: the change
        stands, and a resend with the same key shows the cart without making it again)."""
        try:
            return {"cart": self.render_cart(lines)}
        except ApiError:
            again = ("resend it with the same idempotency_key to see the cart (the change "
                     "will not be made again)" if request.idempotency_key
                     else "DisplayCart shows it")
            raise ApiError("deadline_exceeded", "The cart was changed, but it cannot be shown "
                                                f"now (item details did not come); {again}.") \
                from None

    def render_cart(self, lines: list[list[int]]) -> dict:
        """[[item_id, units], ...] -> the spec's cart, with current names and prices."""
        items = {}
        ids = [item_id for item_id, _ in lines]
        for start in range(0, len(ids), CART_MAX // 2):  # each reply well under MAX_LINE
            found = self.product.call(product_api.GET_ITEMS,
                                      {"item_ids": ids[start:start + CART_MAX // 2]})["items"]
            items.update((item["item_id"], item) for item in found)
        shown, total = [], 0
        for item_id, units in lines:
            item = items.get(item_id, {"name": "", "price_cents": 0, "quantity": 0})
            cents = item["price_cents"]
            total += cents * units
            shown.append({"item_id": item_id, "name": item["name"], "price": dollars(cents),
                          "quantity": units, "line_total": dollars(cents * units),
                          "available": item["quantity"] >= units})
        return {"lines": shown, "total": dollars(total)}

    # -- purchases ------------------------------------------------------------

    def make_purchase(self, request: Request, card_name: str, card_number: str,
                      expiry: str) -> RawResult:
        """Buy the whole session cart across both databases, all or nothing.

        1. customer db ``StartPurchase``: check the session, then move the
           cart's lines into a pending purchase under a fresh id (a second
           purchase of the same cart finds it empty: ``conflict``).
        2. product db ``ReserveUnits``: take every line's units under one lock,
           as a reservation held under that id.
        3. customer db ``CommitPurchase``: record exactly those lines, bump the
           counters. The customer database decides: an id is committed once,
           or cancelled (its lines back in the cart) and then never committed.
        4. product db ``SettleReservations``: mark the reservation sold.
        When step 2 or 3 fails, ``settle`` at once asks the customer database
        for its verdict (cancelling the purchase) and the product database
        keeps or gives back the units. Each request carries a deadline, so a
        database that did not answer in time never applies it later; what a
        dead frontend leaves behind, the customer database's sweeper cancels
        and every buyer frontend's settling thread gives back.
        """
        purchase_id = secrets.token_hex(16)
        problem = card_problem(card_name, card_number, expiry, datetime.date.today())
        cart = self.customer.call(customer_api.START_PURCHASE, {
            "purchase_id": purchase_id, "card_problem": problem}, request.session)["cart"]
        lines = [{"item_id": item_id, "quantity": units} for item_id, units in cart]
        try:
            sold = self.product.call(product_api.RESERVE_UNITS, {"purchase_id": purchase_id,
                                                                 "lines": lines})["lines"]
            if self.commit_delay:
                time.sleep(self.commit_delay)
            purchase = self.customer.call_raw(customer_api.COMMIT_PURCHASE, {
                "purchase_id": purchase_id, "lines": sold, "card_last4": card_number[-4:]})
        except ApiError:
            self.settle_quietly([purchase_id])
            raise
        self.settle_quietly([purchase_id], sold=True)
        return purchase

    def settle(self, purchase_ids: list[str]) -> None:
        """Get the customer database's verdict on these purchases and apply it to the units."""
        verdict = self.customer.call(customer_api.RESOLVE_PURCHASES,
                                     {"purchase_ids": purchase_ids})
        self.product.call(product_api.SETTLE_RESERVATIONS, verdict)

    def settle_quietly(self, purchase_ids: list[str], sold: bool = False) -> None:
        """``settle`` (or, for committed purchases, mark them sold), leaving failures to the
        settling thread."""
        try:
            if sold:
                self.product.call(product_api.SETTLE_RESERVATIONS,
                                  {"sold": purchase_ids, "released": []})
            else:
                self.settle(purchase_ids)
        except ApiError as error:
            log.warning("settling %d purchases failed (%s); the settling thread will retry",
                        len(purchase_ids), error.code)

    def start(self) -> None:
        threading.Thread(target=self._settle_forever, name="purchase-settler",
                         daemon=True).start()

    def _settle_forever(self) -> None:
        """Forever: settle reservations left pending longer than ``settle_after``,
        and deliver the vote undos that did not get through."""
        while True:
            time.sleep(self.settle_after / 2)
            try:
                self.require_one_market()
                while True:
                    stale = self.product.call(product_api.HELD_RESERVATIONS, {
                        "older_than": self.settle_after, "limit": SETTLE_BATCH})["purchase_ids"]
                    if stale:
                        self.settle(stale)
                    if len(stale) < SETTLE_BATCH:
                        break
            except NotOneMarket:
                pass  # nothing is settled against another market's database (logged once)
            except ApiError as error:
                log.warning("settling stale purchases failed: %s", error.code)
            self._retry_undos()

    def undo(self, database: Client, op: InternalOp | str, args: dict,
             first_try: float = 0.0) -> None:
        """Send a compensation (keyed, idempotent, never refused for lateness); if it does
        not get through, the settling thread tries again for ``UNDO_RETRY_FOR`` seconds."""
        first_try = first_try or time.monotonic()
        name = op.name if isinstance(op, InternalOp) else op
        try:
            database.call(op, args)  # one try: a stalled database is not waited for twice
        except ApiError as error:
            if error.code != "unavailable":
                log.warning("%s %s refused: %s", name, args["key"], error.code)
            elif time.monotonic() - first_try < UNDO_RETRY_FOR:
                log.warning("%s %s did not get through; will retry", name, args["key"])
                with self._undo_lock:
                    self._undos.append((first_try, database, op, args))
            else:
                log.error("%s %s given up after %d s", name, args["key"], UNDO_RETRY_FOR)

    def _retry_undos(self) -> None:
        with self._undo_lock:
            due, self._undos = list(self._undos), collections.deque()
        for first_try, database, op, args in due:
            self.undo(database, op, args, first_try)

    def purchases(self, request: Request, limit: int, after: str | None) -> RawResult:
        return self.customer.call_raw(customer_api.GET_PURCHASES, page_args(limit, after),
                                      request.session)

    def provide_feedback(self, request: Request, item_id: int, vote: str) -> dict:
        """Count the vote for the seller (customer db), then the item (product db).

        Both writes carry the attempt's ``key``. If the item's vote fails, it
        is revoked by key (so a late ``RecordVote`` changes nothing; retried in
        the background until delivered) and then the seller's, so the buyer
        may vote again and the vote counts exactly once on each side.
        """
        key = secrets.token_hex(16)
        try:
            buyer_id = self.customer.call(customer_api.RECORD_VOTE, {
                "item_id": item_id, "vote": vote, "key": key}, request.session)["buyer_id"]
        except ApiError as error:
            if error.code == "conflict":  # not bought; not_found if there is no such item
                self.product.call(product_api.GET_ITEM, {"item_id": item_id})
            raise
        vote_args = {"item_id": item_id, "vote": vote, "key": key}
        try:
            self.product.call(product_api.RECORD_VOTE, vote_args)
        except ApiError as error:
            if isinstance(error, NoAnswer):  # it may have been counted: take it back
                self.undo(self.product, product_api.REVOKE_VOTE, vote_args)
            self.undo(self.customer, customer_api.REVOKE_VOTE, {"buyer_id": buyer_id,
                                                                "item_id": item_id, "key": key})
            raise
        return {}


def main(argv: list[str] | None = None) -> None:
    frontend_main(BuyerFrontend, "Buyer frontend of the marketplace.", "BUYER_SERVER",
                  DEFAULT_BUYER_FRONTEND_PORT, argv)


if __name__ == "__main__":
    main()
