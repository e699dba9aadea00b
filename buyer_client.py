"""Buyer CLI: a person's shell on the buyer frontend (python3 buyer_client.py --help)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from market.fields import (CATEGORY, ITEM_ID, KEYWORDS, QUANTITY, SEARCH_LIMIT, SELLER_ID, VOTE,
                           card_problem)
from market.shell import MORE, Arg, Command, cli_main, read_words
from market.views import items_table, money, rating_text, table
from protocol import ApiError, Omittable, Validator

SOME_VALID_CARD = {"card_name": "A", "card_number": "4111111111111111", "expiry": "12/99"}


@dataclass
class CardField(Validator):
    """One card field, checked by the buyer frontend's own rules (``card_problem``)."""

    field: str

    def __call__(self, name: str, value: Any) -> str:
        card = {**SOME_VALID_CARD, self.field: value}
        problem = card_problem(**card, today=datetime.date.today())
        if problem:
            raise ApiError("bad_request", f"The card would be rejected: {problem}.")
        return value


def digits_only(text: str) -> str:
    """'4111 1111-1111 1111' -> '4111111111111111'."""
    return text.replace(" ", "").replace("-", "")


def found_text(result: dict) -> str:
    return items_table(result["items"]) if result["items"] else "No items found."


def item_text(result: dict) -> str:
    item = result["item"]
    rows = [["category", item["category"]], ["condition", item["condition"]],
            ["price", money(item["price"])], ["units left", item["quantity"]],
            ["keywords", ", ".join(item["keywords"]) or "-"], ["seller id", item["seller_id"]],
            ["votes", f"{item['thumbs_up']} up, {item['thumbs_down']} down"]]
    details = table([[key, str(value)] for key, value in rows])
    return f"Item {item['item_id']}: {item['name']}\n" + _indent(details)


def cart_text(result: dict) -> str:
    cart = result["cart"]
    if not cart["lines"]:
        return "Your cart is empty."
    rows = [[line["item_id"], line["name"], money(line["price"]), line["quantity"],
             money(line["line_total"]), "" if line["available"] else "not enough units left"]
            for line in cart["lines"]]
    return (table(rows, ["ID", "Name", "Price", "Units", "Line total", ""])
            + f"\nTotal: {money(cart['total'])}")


def saved_text(result: dict) -> str:
    return "Cart saved; it will be there at your next login.\n" + cart_text(result)


def purchase_text(result: dict) -> str:
    purchase = result["purchase"]
    return (f"Bought for {money(purchase['total'])}, paid with the card ending "
            f"{purchase['card_last4']}.\n" + _lines_table(purchase["lines"]))


def purchases_text(result: dict) -> str:
    if not result["purchases"]:
        return "No purchases yet."
    parts = []
    for purchase in result["purchases"]:
        when = purchase["time"][:16].replace("T", " ")
        parts.append(f"{when} UTC, {money(purchase['total'])}, card ending "
                     f"{purchase['card_last4']}:\n" + _indent(_lines_table(purchase["lines"])))
    return "\n".join(parts) + f"\nUnits bought in all: {result['items_purchased']}."


def _lines_table(lines: list[dict]) -> str:
    return table([[line["item_id"], line["name"], line["quantity"], money(line["price"]),
                   money(line["line_total"]), line["seller_id"]] for line in lines],
                 ["ID", "Name", "Units", "Price", "Line total", "Seller"])


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


ITEM = Arg("item_id", "Item id", ITEM_ID, int)

COMMANDS = [
    Command("search", "SearchItemsForSale", "items for sale in a category", (
        Arg("category", "Category (0-99)", CATEGORY, int),
        Arg("keywords", "Keywords, up to 5 of up to 8 letters, e.g. desk,light",
            Omittable(KEYWORDS, []), read_words),
        Arg("limit", "At most this many items (1-500)", SEARCH_LIMIT, int),
    ), show=found_text, read_only=True),
    Command("item", "GetItem", "one item in detail", (ITEM,), show=item_text, read_only=True),
    Command("add", "AddItemToCart", "put units of an item in your cart",
            (ITEM, Arg("quantity", "Units", QUANTITY, int)), show=cart_text, cart="changed"),
    Command("remove", "RemoveItemFromCart", "take units of an item out of your cart",
            (ITEM, Arg("quantity", "Units to take out", QUANTITY, int)), show=cart_text,
            cart="changed"),
    Command("cart", "DisplayCart", "show your cart", show=cart_text, read_only=True),
    Command("save", "SaveCart", "keep your cart for your next login", show=saved_text,
            cart="saved"),
    Command("clear", "ClearCart", "empty your cart",
            show=lambda result: "Cart emptied; save to empty your saved cart too.",
            cart="changed"),
    Command("buy", "MakePurchase", "buy everything in your cart", (
        Arg("card_name", "Name on the card", CardField("card_name")),
        Arg("card_number", "Card number", CardField("card_number"), digits_only),
        Arg("expiry", "Expiry (MM/YY)", CardField("expiry")),
    ), show=purchase_text, cart="saved"),
    Command("purchases", "GetBuyerPurchases", "what you have bought, 100 at a time", (MORE,),
            show=purchases_text, read_only=True, paged=True),
    Command("rate", "ProvideFeedback", "vote up or down on an item you bought",
            (ITEM, Arg("vote", "Vote (up or down)", VOTE, str.lower, metavar="up|down")),
            show=lambda result: "Thanks, your vote is counted."),
    Command("rating", "GetSellerRating", "a seller's thumbs up and down",
            (Arg("seller_id", "Seller id", SELLER_ID, int),), show=rating_text, read_only=True),
]


def main(argv: list[str] | None = None) -> None:
    cli_main("buyer", COMMANDS, "BUYER_SERVER", 8002, "search 3 desk,light", argv)


if __name__ == "__main__":
    main()
