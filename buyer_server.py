"""Buyer frontend (default port 8002): every write goes to the databases; items and ratings
are read from the frontend's copies while fresh (``market.replication.feed``).

``MakePurchase`` and ``ProvideFeedback`` span both databases: ``market.frontend.checkout``.
"""
from __future__ import annotations

import argparse
import threading

from market.config import (
    CART_MAX,
    DEFAULT_BUYER_FRONTEND_PORT,
    DEFAULT_SETTLE_AFTER,
    MAX_LINE,
)
from market.customer import api as customer_api
from market.fields import (
    CATEGORY,
    ITEM_ID,
    KEYWORDS,
    QUANTITY,
    SEARCH_LIMIT,
    SELLER_ID,
    VOTE,
    dollars,
)
from market.frontend.checkout import Checkout
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
        self.settler = Settler(customer_db, product_db, self.settle_after)
        self.checkout = Checkout(customer_db, product_db, self.settler, self.keyed,
                                 self.card_print)
        super().__init__(customer_db, product_db, hasher)  # role_ops: after the checkout

    def configure(self, args: argparse.Namespace) -> None:
        self.settler.settle_after = max(1, args.settle_after)
        self.checkout.commit_delay = args.test_commit_delay

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
            "MakePurchase": Op(self.checkout.buy, CARD_FIELDS, keyed=True),
            "ProvideFeedback": Op(self.checkout.vote, {"item_id": ITEM_ID, "vote": VOTE},
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

    # -- purchases and votes (market.frontend.checkout) --------------------------------

    def start(self) -> None:
        super().start()
        threading.Thread(target=self.settler.run_forever, args=(self.require_one_market,),
                         name="settler", daemon=True).start()

    def purchases(self, request: Request, limit: int, after: str | None) -> RawResult:
        return self.customer.call_raw(customer_api.GET_PURCHASES, page_args(limit, after),
                                      request.session)


def main(argv: list[str] | None = None) -> None:
    frontend_main(BuyerFrontend, "Buyer frontend of the marketplace.", "BUYER_SERVER",
                  DEFAULT_BUYER_FRONTEND_PORT, argv)


if __name__ == "__main__":
    main()
