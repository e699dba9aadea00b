"""Buyer frontend (default port 8002): every write goes to the databases; items and ratings
are read from the frontend's copies while fresh (``market.replication.feed``).

``MakePurchase`` spans both databases; see ``BuyerFrontend.make_purchase``.
"""
from __future__ import annotations

import argparse
import datetime
import threading
import time

from market.config import (
    CART_MAX,
    DEFAULT_BUYER_FRONTEND_PORT,
    DEFAULT_SETTLE_AFTER,
    MAX_LINE,
)
from market.customer import api as customer_api
from market.customer.purchases import PurchaseState
from market.customer.votes import VoteState
from market.errors import FINAL_ERRORS, NoAnswer
from market.fields import (
    CATEGORY,
    ITEM_ID,
    KEYWORDS,
    QUANTITY,
    SEARCH_LIMIT,
    SELLER_ID,
    VOTE,
    card_problem,
    dollars,
)
from market.frontend.main import frontend_main
from market.frontend.passwords import PasswordHasher
from market.frontend.service import Frontend
from market.frontend.settling import Settler
from market.net.client import Client
from market.net.flags import env_default
from market.net.internal import InternalOp
from market.net.service import Op, Request
from market.paging import CURSOR, PAGE_LIMIT, page_args
from market.product import api as product_api
from protocol import ApiError, Omittable, RawResult, Str

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
                    "seconds after which an unfinished purchase or vote is completed or "
                    "undone",
                    type=int)
        parser.add_argument("--test-commit-delay", type=float, default=0.0, metavar="SECONDS",
                            help="for tests: pause this long between taking a purchase's "
                                 "units and recording it (default 0)")

    def __init__(self, customer_db: Client, product_db: Client,
                 hasher: PasswordHasher | None = None) -> None:
        super().__init__(customer_db, product_db, hasher)
        self.settler = Settler(customer_db, product_db, self.settle_after)

    def configure(self, args: argparse.Namespace) -> None:
        self.settler.settle_after = max(1, args.settle_after)
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
        return self.catalog.read(
            lambda catalog: catalog.search(category, keywords, limit),
            lambda: self.product.call_raw(product_api.SEARCH, {
                "category": category, "keywords": keywords, "limit": limit}))

    def get_item(self, request: Request, item_id: int) -> RawResult:
        self.user_id(request)
        return self.catalog.read(lambda catalog: catalog.item(item_id),
                               lambda: self.product.call_raw(product_api.GET_ITEM,
                                                             {"item_id": item_id}))

    # -- carts ----------------------------------------------------------------

    def add_to_cart(self, request: Request, item_id: int, quantity: int) -> dict:
        """The item's units (from the copy, else asked), the checked (keyed) write, the
        cart's items.

        The session is checked by the write, so an unknown item is ``not_found``
        even for a bad session (items are public through search anyway).
        """
        available = self.catalog.read(
            lambda catalog: catalog.get(item_id).quantity,
            lambda: self.product.call(product_api.GET_ITEM,
                                      {"item_id": item_id})["item"]["quantity"])
        args = {"item_id": item_id, "quantity": quantity}
        result = self.customer.call(customer_api.ADD_TO_CART, {
            **args, "available": available, **self.keyed(request, args)},
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
        ids = [item_id for item_id, _ in lines]
        items = self.catalog.read(
            lambda catalog: {item.item_id: item.cart_line() for item in catalog.existing(ids)},
            lambda: self.ask_cart_items(ids))
        shown, total = [], 0
        for item_id, units in lines:
            item = items.get(item_id, {"name": "", "price_cents": 0, "quantity": 0})
            cents = item["price_cents"]
            total += cents * units
            shown.append({"item_id": item_id, "name": item["name"], "price": dollars(cents),
                          "quantity": units, "line_total": dollars(cents * units),
                          "available": item["quantity"] >= units})
        return {"lines": shown, "total": dollars(total)}

    def ask_cart_items(self, ids: list[int]) -> dict[int, dict]:
        """What cart lines show of the items ``ids`` (``Item.cart_line``), by id, asked."""
        items = {}
        for start in range(0, len(ids), CART_MAX // 2):  # each reply well under MAX_LINE
            found = self.product.call(product_api.GET_ITEMS,
                                      {"item_ids": ids[start:start + CART_MAX // 2]})["items"]
            items.update((item["item_id"], item) for item in found)
        return items

    # -- purchases ------------------------------------------------------------

    def make_purchase(self, request: Request, card_name: str, card_number: str,
                      expiry: str) -> RawResult:
        """Buy the whole session cart across both databases, all or nothing, once per key.

        1. customer db ``StartPurchase``: check the session, then move the cart's
           lines into a purchase started under an id derived from the buyer's key.
           A resend finds that purchase: committed (its record is the answer),
           started (go on: the steps below are keyed by the id) or cancelled (its
           final error again, else ``conflict``).
        2. product db ``ReserveUnits``: take every line's units under one lock, as
           a reservation held under that id.
        3. customer db ``CommitPurchase``: record exactly those lines. The customer
           database decides: an id is committed once, or cancelled (its lines back
           in the cart) and then never committed.
        4. product db ``SettleReservations``: mark the reservation sold.
        When step 2 or 3 fails, ``purchase_failed`` answers by the verdict. What a
        dead frontend leaves behind, the customer database's sweeper cancels and
        every buyer frontend's settling thread settles (``market.frontend.settling``).
        """
        # The fingerprint sees the card only as what is kept of it anyway (its last four
        # digits): a hash of the whole number, journaled, could be searched offline.
        card = {"card_name": card_name, "card_last4": card_number[-4:], "expiry": expiry}
        problem = card_problem(card_name, card_number, expiry, datetime.date.today())
        started = self.customer.call(customer_api.START_PURCHASE, {
            **self.keyed(request, card), "card_problem": problem}, request.session)
        purchase_id = started["purchase_id"]
        if started["state"] == PurchaseState.COMMITTED:
            return self.customer.call_raw(customer_api.GET_PURCHASE,
                                          {"purchase_id": purchase_id}, request.session)
        lines = [{"item_id": item_id, "quantity": units} for item_id, units in started["cart"]]
        try:
            sold = self.product.call(product_api.RESERVE_UNITS, {"purchase_id": purchase_id,
                                                                 "lines": lines})["lines"]
            if self.commit_delay:
                time.sleep(self.commit_delay)
            purchase = self.customer.call_raw(customer_api.COMMIT_PURCHASE, {
                "purchase_id": purchase_id, "lines": sold, "card_last4": card_number[-4:]})
        except ApiError as error:
            return self.purchase_failed(request, purchase_id, error)
        self.settler.sell_or_release({"sold": [purchase_id], "released": []})
        return purchase

    def purchase_failed(self, request: Request, purchase_id: str,
                        error: ApiError) -> RawResult:
        """Answer by the purchase's verdict (asked for, cancelling it unless committed):
        a committed purchase's record (never ``unavailable``: it was made); for one
        cancelled, ``error`` if it was a final refusal, else ``unavailable`` (nothing
        was bought). If the verdict cannot be learned now: ``deadline_exceeded`` when
        the failed step may have been applied (``NoAnswer``), else ``error`` (that step
        was refused or never sent, so this request bought nothing; what it started is
        undone by the sweeper and the settlers)."""
        final = error.code in FINAL_ERRORS
        try:
            verdict = self.settler.purchases([purchase_id], {
                "code": error.code, "message": error.message} if final else None)
        except ApiError:
            if not isinstance(error, NoAnswer):
                raise error from None
            raise ApiError("deadline_exceeded", "The purchase may or may not have been made; "
                                                f"{ask_again(request)}.") from None
        if purchase_id in verdict["sold"]:
            try:
                return self.customer.call_raw(customer_api.GET_PURCHASE,
                                              {"purchase_id": purchase_id}, request.session)
            except ApiError:
                raise ApiError("deadline_exceeded", "The purchase was made, but it cannot be "
                                                    f"shown now; {ask_again(request)}.") \
                    from None
        if final:
            raise error
        raise ApiError("unavailable", "The purchase was not made and nothing was charged (a "
                                      "database did not answer in time); the cart is as it "
                                      "was; try again.")

    def start(self) -> None:
        super().start()
        threading.Thread(target=self.settler.run_forever, args=(self.require_one_market,),
                         name="settler", daemon=True).start()

    def purchases(self, request: Request, limit: int, after: str | None) -> RawResult:
        return self.customer.call_raw(customer_api.GET_PURCHASES, page_args(limit, after),
                                      request.session)

    # -- votes ------------------------------------------------------------------

    def provide_feedback(self, request: Request, item_id: int, vote: str) -> dict:
        """Count the buyer's vote on the item and for its seller: on both, or on neither.

        1. customer db ``RecordVote``: the buyer bought the item and has no vote on
           it; the vote is recorded (not yet counted) under a vote key derived
           from the buyer's key. A resend finds that vote, in whatever state.
        2. product db ``RecordVote``: counted on the item, once per vote key,
           unless the key was refused.
        3. customer db ``SettleVotes``: counted for the seller too, or dropped.
        When step 2 fails, the product database's verdict on the key is asked for
        (``ResolveVotes``: refusing it unless it was counted). A vote left recorded
        is settled by every buyer frontend's settling thread (``market.frontend.settling``).
        """
        args = {"item_id": item_id, "vote": vote}
        try:
            recorded = self.customer.call(customer_api.RECORD_VOTE, {
                **args, **self.keyed(request, args)}, request.session)
        except ApiError as error:
            if error.code == "conflict":  # not bought; not_found if there is no such item
                self.product.call(product_api.GET_ITEM, {"item_id": item_id})
            raise
        key = recorded["vote_key"]
        if recorded["state"] is None:
            raise ApiError("conflict", "This vote was not counted, and nothing changed; vote "
                                       "again with a new idempotency_key.")
        if recorded["state"] == VoteState.COUNTED:
            return {}
        try:
            counted = self.product.call(product_api.RECORD_VOTE, {**args, "key": key})["counted"]
            verdict = {"counted": [key] if counted else [], "refused": [] if counted else [key]}
        except ApiError:
            verdict = None  # the outcome is unknown: ask for the verdict
        try:
            verdict = self.settler.votes([key], verdict)
        except ApiError:
            if verdict and verdict["counted"]:  # counted on the item: the seller's follows
                return {}
            raise ApiError("deadline_exceeded", "The vote was recorded but not yet counted: "
                                                "within a minute of the databases answering "
                                                "it counts on both the item and its seller, or "
                                                f"on neither; {ask_again(request)}.") from None
        if verdict["counted"]:
            return {}
        raise ApiError("unavailable", "The vote was not counted (the item's database did not "
                                      "take it in time); nothing changed; vote again.")


def ask_again(request: Request) -> str:
    """How the client of a write whose outcome is unknown learns it."""
    if request.idempotency_key:
        return "resend it with the same idempotency_key to learn the outcome"
    return "send writes with an idempotency_key, so that a resend can learn their outcome"


def main(argv: list[str] | None = None) -> None:
    frontend_main(BuyerFrontend, "Buyer frontend of the marketplace.", "BUYER_SERVER",
                  DEFAULT_BUYER_FRONTEND_PORT, argv)


if __name__ == "__main__":
    main()
