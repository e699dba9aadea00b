"""Buyer frontend (default port 8002): stateless, every request goes to the databases.

``MakePurchase`` spans both databases; see ``BuyerFrontend.make_purchase``.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import secrets
import threading
import time

from protocol import (ApiError, Frontend, Int, ITEM_ID, Keywords, MAX_LINE, Op, Optional,
                      QUANTITY, RawResult, Request, Str, VOTE, dollars, env_default,
                      frontend_main)

log = logging.getLogger("marketplace")

# Test hook: seconds to pause between taking the units and recording the
# purchase, so a test can stop the customer database right there.
COMMIT_DELAY = float(os.environ.get("MARKET_TEST_COMMIT_DELAY", "0"))

SETTLE_BATCH = 1000  # purchase ids per settling round trip (well under 1 MiB)

# Only the type is checked here: any string the card check refuses is ``conflict``
# ("card rejected"), as the contract says, not ``bad_request``.
ANY_STRING = Str(0, MAX_LINE, no_control=False)
CARD = {"card_name": ANY_STRING, "card_number": ANY_STRING, "expiry": ANY_STRING}


def card_problem(card_name: str, card_number: str, expiry: str, today: datetime.date) -> str:
    """Why the card is rejected, or '' when it is acceptable."""
    if not 1 <= len(card_name) <= 64 or any(ord(c) < 32 for c in card_name):
        return "the name on the card must be 1 to 64 characters"
    if not (card_number.isascii() and card_number.isdigit() and 13 <= len(card_number) <= 19):
        return "the card number must be 13 to 19 digits"
    if not luhn_ok(card_number):
        return "the card number fails the Luhn check"
    month, slash, year = expiry.partition("/")
    if not (slash and len(month) == 2 and len(year) == 2 and month.isdigit()
            and year.isdigit() and 1 <= int(month) <= 12):
        return "the expiry must be MM/YY"
    if (2000 + int(year), int(month)) < (today.year, today.month):
        return "the card has expired"
    return ""


def luhn_ok(number: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


class BuyerFrontend(Frontend):
    name = "buyer frontend"
    role = "buyer"
    settle_after = 10

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        env_default(parser, "--settle-after", "SETTLE_AFTER", cls.settle_after,
                    "seconds after which an unfinished purchase is completed or undone",
                    type=int)

    def configure(self, args: argparse.Namespace) -> None:
        self.settle_after = max(1, args.settle_after)

    def role_ops(self) -> dict[str, Op]:
        cart_line = {"item_id": ITEM_ID, "quantity": QUANTITY}
        return {
            "SearchItemsForSale": Op(self.search, {
                "category": Int(0, 99), "keywords": Optional(Keywords(), []),
                "limit": Optional(Int(1, 500), 100)}),
            "GetItem": Op(self.get_item, {"item_id": ITEM_ID}),
            "AddItemToCart": Op(self.add_to_cart, cart_line),
            "RemoveItemFromCart": Op(self.cart_op("RemoveFromCart"), cart_line),
            "SaveCart": Op(self.cart_op("SaveCart")),
            "ClearCart": Op(self.cart_op("ClearCart")),
            "DisplayCart": Op(self.cart_op("GetCart", idempotent=True)),
            "MakePurchase": Op(self.make_purchase, CARD),
            "ProvideFeedback": Op(self.provide_feedback, {"item_id": ITEM_ID, "vote": VOTE}),
            "GetSellerRating": Op(self.seller_rating, {"seller_id": Int(1)}),
            "GetBuyerPurchases": Op(self.purchases),
        }

    # -- items ----------------------------------------------------------------

    def search(self, request: Request, category: int, keywords: list[str],
               limit: int) -> RawResult:
        self.user_id(request)
        return self.product.call_raw("Search", {"category": category, "keywords": keywords,
                                                "limit": limit}, idempotent=True)

    def get_item(self, request: Request, item_id: int) -> RawResult:
        self.user_id(request)
        return self.product.call_raw("GetItem", {"item_id": item_id}, idempotent=True)

    # -- carts ----------------------------------------------------------------

    def add_to_cart(self, request: Request, item_id: int, quantity: int) -> dict:
        """Three round trips: the item's units, the checked write, the cart's items.

        The session is checked by the write, so an unknown item is ``not_found``
        even for a bad session (items are public through search anyway).
        """
        item = self.product.call("GetItem", {"item_id": item_id}, idempotent=True)["item"]
        result = self.customer.call("AddToCart", {"item_id": item_id, "quantity": quantity,
                                                  "available": item["quantity"]}, request.session)
        return {"cart": self.render_cart(result["cart"])}

    def cart_op(self, db_op: str, idempotent: bool = False):
        """A handler that runs ``db_op`` on the session's cart and shows the result."""
        def handler(request: Request, **args: object) -> dict:
            result = self.customer.call(db_op, args, request.session, idempotent=idempotent)
            return {"cart": self.render_cart(result["cart"])}
        return handler

    def render_cart(self, lines: list[list[int]]) -> dict:
        """[[item_id, units], ...] -> the spec's cart, with current names and prices."""
        items = {}
        if lines:
            found = self.product.call("GetItems", {"item_ids": [i for i, _ in lines]},
                                      idempotent=True)["items"]
            items = {item["item_id"]: item for item in found}
        shown, total = [], 0
        for item_id, units in lines:
            item = items.get(item_id, {"name": "", "price": 0, "quantity": 0})
            cents = round(item["price"] * 100)
            total += cents * units
            shown.append({"item_id": item_id, "name": item["name"], "price": item["price"],
                          "quantity": units, "line_total": dollars(cents * units),
                          "available": item["quantity"] >= units})
        return {"lines": shown, "total": dollars(total)}

    # -- purchases ------------------------------------------------------------

    def make_purchase(self, request: Request, card_name: str, card_number: str,
                      expiry: str) -> RawResult:
        """Buy the whole session cart across both databases, all or nothing.

        1. customer db ``StartPurchase``: check the session, read the cart.
        2. product db ``ReserveUnits``: take every line's units under one lock,
           as a pending reservation under a fresh purchase id.
        3. customer db ``CommitPurchase``: append the record, bump counters,
           empty both carts. The customer database decides: a purchase id is
           committed once, or cancelled and then never committed.
        If a database refuses step 3, or answers step 2 with ``internal``,
        ``settle`` at once asks the customer database for its verdict and the
        product database keeps or gives back the units. When a database does
        not answer (down or stalled), or this frontend dies, the reply does not
        wait: every buyer frontend's settling thread settles it later.
        """
        cart = self.customer.call("StartPurchase", {}, request.session)["cart"]
        problem = card_problem(card_name, card_number, expiry, datetime.date.today())
        if problem:
            raise ApiError("conflict", f"The card was rejected: {problem}.")
        purchase_id = secrets.token_hex(16)
        lines = [{"item_id": item_id, "quantity": units} for item_id, units in cart]
        try:
            sold = self.product.call("ReserveUnits", {"purchase_id": purchase_id,
                                                      "lines": lines})["lines"]
        except ApiError as error:
            if error.code == "internal":  # the units may have been taken
                self.settle_quietly([purchase_id])
            raise
        if COMMIT_DELAY:
            time.sleep(COMMIT_DELAY)
        try:
            return self.customer.call_raw("CommitPurchase", {
                "purchase_id": purchase_id, "lines": sold, "card_last4": card_number[-4:]},
                request.session)
        except ApiError as error:
            if error.code != "unavailable":
                self.settle_quietly([purchase_id])
            raise

    def settle(self, purchase_ids: list[str]) -> None:
        """Get the customer database's verdict on these purchases and apply it to the units."""
        verdict = self.customer.call("ResolvePurchases", {"purchase_ids": purchase_ids},
                                     idempotent=True)
        self.product.call("SettlePurchases", verdict, idempotent=True)

    def settle_quietly(self, purchase_ids: list[str]) -> None:
        try:
            self.settle(purchase_ids)
        except ApiError as error:
            log.warning("settling %d purchases failed (%s); the settling thread will retry",
                        len(purchase_ids), error.code)

    def start(self) -> None:
        threading.Thread(target=self._settle_stale_purchases, name="purchase-settler",
                         daemon=True).start()

    def _settle_stale_purchases(self) -> None:
        """Forever: settle reservations left pending longer than ``settle_after``."""
        while True:
            time.sleep(self.settle_after / 2)
            try:
                while True:
                    stale = self.product.call("PendingPurchases", {
                        "older_than": self.settle_after, "limit": SETTLE_BATCH},
                        idempotent=True)["purchase_ids"]
                    if stale:
                        self.settle(stale)
                    if len(stale) < SETTLE_BATCH:
                        break
            except ApiError as error:
                log.warning("settling stale purchases failed: %s", error.code)

    def purchases(self, request: Request) -> RawResult:
        return self.customer.call_raw("GetPurchases", {}, request.session, idempotent=True)

    def provide_feedback(self, request: Request, item_id: int, vote: str) -> dict:
        """Count the vote for the seller (customer db), then the item (product db)."""
        args = {"item_id": item_id, "vote": vote}
        try:
            self.customer.call("RecordFeedback", args, request.session)
        except ApiError as error:
            if error.code == "conflict":  # not bought; not_found if there is no such item
                self.product.call("GetItem", {"item_id": item_id}, idempotent=True)
            raise
        try:
            self.product.call("AddVote", args)
        except ApiError:
            self.customer.call("RevokeFeedback", args, request.session)
            raise
        return {}


def main(argv: list[str] | None = None) -> None:
    frontend_main(BuyerFrontend, "Buyer frontend of the marketplace.", "BUYER_SERVER", 8002,
                  argv)


if __name__ == "__main__":
    main()
