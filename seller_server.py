"""Seller frontend (default port 8001): every write goes to the databases; a seller's items
and rating are read from the frontend's copies while fresh (``market.replication.feed``).

Each write is keyed (``Frontend.keyed``): the product database applies it once per
key and seller, so a resend, here or at another seller frontend, gets the first reply.
"""
from __future__ import annotations

from market.config import DEFAULT_SELLER_FRONTEND_PORT
from market.fields import (
    CATEGORY,
    CONDITION,
    ITEM_ID,
    ITEM_NAME,
    KEYWORDS,
    PRICE,
    QUANTITY,
)
from market.frontend.main import frontend_main
from market.frontend.service import Frontend
from market.net.service import Op, Request
from market.paging import CURSOR, PAGE_LIMIT, page_args
from market.product import api as product_api
from protocol import RawResult


class SellerFrontend(Frontend):
    name = "seller frontend"
    role = kind = "seller"

    def role_ops(self) -> dict[str, Op]:
        return {
            "GetSellerRating": Op(self.get_seller_rating),
            "RegisterItemForSale": Op(self.register_item, {
                "name": ITEM_NAME, "category": CATEGORY, "keywords": KEYWORDS,
                "condition": CONDITION, "price": PRICE, "quantity": QUANTITY}, keyed=True),
            "ChangeItemPrice": Op(self.change_price, {"item_id": ITEM_ID, "price": PRICE},
                                  keyed=True),
            "UpdateUnitsForSale": Op(self.remove_units, {"item_id": ITEM_ID,
                                                         "quantity": QUANTITY}, keyed=True),
            "DisplayItemsForSale": Op(self.display_items, {"limit": PAGE_LIMIT, "after": CURSOR}),
        }

    def get_seller_rating(self, request: Request) -> RawResult:
        return self.seller_rating(request, None)

    def register_item(self, request: Request, **item: object) -> RawResult:
        return self.product.call_raw(product_api.REGISTER_ITEM, {
            "seller_id": self.user_id(request), **item, **self.keyed(request, item)})

    def change_price(self, request: Request, item_id: int, price: int) -> RawResult:
        args = {"item_id": item_id, "price": price}
        return self.product.call_raw(product_api.CHANGE_PRICE, {
            "seller_id": self.user_id(request), **args, **self.keyed(request, args)})

    def remove_units(self, request: Request, item_id: int, quantity: int) -> RawResult:
        args = {"item_id": item_id, "quantity": quantity}
        return self.product.call_raw(product_api.REMOVE_UNITS, {
            "seller_id": self.user_id(request), **args, **self.keyed(request, args)})

    def display_items(self, request: Request, limit: int, after: str | None) -> RawResult:
        seller_id = self.user_id(request)
        return self.catalog.read(
            lambda catalog: catalog.seller_items(seller_id, limit, after),
            lambda: self.product.call_raw(product_api.SELLER_ITEMS, {
                "seller_id": seller_id, **page_args(limit, after)}))


def main(argv: list[str] | None = None) -> None:
    frontend_main(SellerFrontend, "Seller frontend of the marketplace.", "SELLER_SERVER",
                  DEFAULT_SELLER_FRONTEND_PORT, argv)


if __name__ == "__main__":
    main()
