"""Seller CLI: a person's shell on the seller frontend (python3 seller_client.py --help)."""
from __future__ import annotations

from typing import Callable

from protocol import (Arg, Command, Int, ITEM_ID, Keywords, OneOf, Optional, Price, QUANTITY,
                      Str, cli_main, items_table, rating_text, read_price, read_words)

ITEM = Arg("item_id", "Item id", ITEM_ID, int)


def items_text(result: dict) -> str:
    if not result["items"]:
        return "You have no items yet; put one up for sale with register."
    return items_table(result["items"], with_seller=False)


def changed_text(what: str) -> Callable[[dict], str]:
    """Show an item's new state after a change."""
    return lambda result: f"{what}:\n" + items_table([result["item"]], with_seller=False)


COMMANDS = [
    Command("list", "DisplayItemsForSale", "your items, sold-out ones too", show=items_text,
            read_only=True),
    Command("register", "RegisterItemForSale", "put an item up for sale", (
        Arg("name", "Item name (1-32 characters)", Str(1, 32)),
        Arg("category", "Category (0-99)", Int(0, 99), int),
        Arg("condition", "Condition (new or used)", OneOf(("new", "used")), str.lower),
        Arg("price", "Price in dollars, e.g. 17.50", Price(), read_price),
        Arg("quantity", "Units for sale", QUANTITY, int),
        Arg("keywords", "Keywords, up to 5 of up to 8 letters, e.g. desk,light",
            Optional(Keywords(), []), read_words),
    ), show=lambda result: f"Listed as item {result['item_id']}."),
    Command("price", "ChangeItemPrice", "change an item's price",
            (ITEM, Arg("price", "New price in dollars", Price(), read_price)),
            show=changed_text("Price changed")),
    Command("remove", "UpdateUnitsForSale", "take units of an item off sale",
            (ITEM, Arg("quantity", "Units to remove", QUANTITY, int)),
            show=changed_text("Units removed")),
    Command("rating", "GetSellerRating", "your thumbs up and down, and units sold",
            show=rating_text, read_only=True),
]


def main(argv: list[str] | None = None) -> None:
    cli_main("seller", COMMANDS, "SELLER_SERVER", 8001,
             "register lamp 3 new 17.50 5 desk,light", argv)


if __name__ == "__main__":
    main()
