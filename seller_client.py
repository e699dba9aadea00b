"""Seller CLI: a person's shell on the seller frontend (python3 seller_client.py --help)."""
from __future__ import annotations

from typing import Callable

from market.cli.commands import MORE, Arg, Command, read_price, read_whole, read_words
from market.cli.shell import cli_main
from market.cli.views import items_table, rating_text
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
from protocol import Omittable

ITEM = Arg("item_id", "Item id", ITEM_ID, read_whole)


def items_text(result: dict) -> str:
    if not result["items"]:
        return "You have no items yet; put one up for sale with register."
    return items_table(result["items"], with_seller=False)


def changed_text(what: str) -> Callable[[dict], str]:
    """Show an item's new state after a change."""
    return lambda result: f"{what}:\n" + items_table([result["item"]], with_seller=False)


COMMANDS = [
    Command("list", "DisplayItemsForSale", "your items, sold-out ones too, 100 at a time",
            (MORE,), show=items_text, paged=True),
    Command("register", "RegisterItemForSale", "put an item up for sale", (
        Arg("name", "Item name (1-32 characters)", ITEM_NAME),
        Arg("category", "Category (0-99)", CATEGORY, read_whole),
        Arg("condition", "Condition (new or used)", CONDITION, str.lower),
        Arg("price", "Price in dollars, e.g. 17.50", PRICE, read_price),
        Arg("quantity", "Units for sale", QUANTITY, read_whole),
        Arg("keywords", "Keywords, up to 5 of up to 8 letters, e.g. desk,light",
            Omittable(KEYWORDS, []), read_words),
    ), show=lambda result: f"Listed as item {result['item_id']}.", check="list"),
    Command("price", "ChangeItemPrice", "change an item's price",
            (ITEM, Arg("price", "New price in dollars", PRICE, read_price)),
            show=changed_text("Price changed"), check="list"),
    Command("remove", "UpdateUnitsForSale", "take units of an item off sale",
            (ITEM, Arg("quantity", "Units to remove", QUANTITY, read_whole)),
            show=changed_text("Units removed"), check="list"),
    Command("rating", "GetSellerRating", "your thumbs up and down, and units sold",
            show=rating_text),
]


def main(argv: list[str] | None = None) -> None:
    cli_main("seller", COMMANDS, "SELLER_SERVER", DEFAULT_SELLER_FRONTEND_PORT,
             "register lamp 3 new 17.50 5 desk,light", argv)


if __name__ == "__main__":
    main()
