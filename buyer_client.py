"""Buyer CLI: a person's shell on the buyer frontend (python3 buyer_client.py --help)."""
from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass
from typing import Any

from market.cli import prompts
from market.cli.commands import MORE, Arg, Command, read_whole, read_words
from market.cli.shell import SessionHooks, Shell, cli_main
from market.cli.views import items_table, money, rating_text, shown, table
from market.config import DEFAULT_BUYER_FRONTEND_PORT, SAMPLE_CARD
from market.errors import CliError
from market.fields import (
    CATEGORY,
    ITEM_ID,
    KEYWORDS,
    QUANTITY,
    SEARCH_LIMIT,
    SELLER_ID,
    VOTE,
    card_problem,
)
from protocol import ApiError, Omittable, Validator


@dataclass
class CardField(Validator):
    """One card field, checked by the buyer frontend's own rules (``card_problem``)."""

    field: str

    def __call__(self, name: str, value: Any) -> str:
        card = {**SAMPLE_CARD, self.field: value}  # the other fields pass every check
        problem = card_problem(**card, today=datetime.date.today())
        if problem:
            raise ApiError("bad_request", f"The card would be rejected: {problem}.")
        return value


def digits_only(text: str) -> str:
    """'4111 1111-1111 1111' -> '4111111111111111'."""
    return text.replace(" ", "").replace("-", "")


def found_text(result: dict) -> str:
    return items_table(result["items"]) if result["items"] else "No items found."


def search(shell: Shell, args: dict) -> str:
    """Search, saying so when the result reached its limit (there may be more)."""
    result = shell.call("SearchItemsForSale", args)
    limit = args.get("limit", SEARCH_LIMIT.default)
    if len(result["items"]) < limit:
        return found_text(result)
    wider = "" if limit >= SEARCH_LIMIT.inner.high else \
        f", or ask for up to {SEARCH_LIMIT.inner.high} with a limit"
    return (found_text(result) + f"\nShowing the first {limit} matches; there may be more: "
            f"narrow the search with keywords{wider} (search CATEGORY KEYWORDS LIMIT).")


def item_text(result: dict) -> str:
    item = result["item"]
    rows = [["category", item["category"]], ["condition", item["condition"]],
            ["price", money(item["price"])], ["units left", item["quantity"]],
            ["keywords", ", ".join(item["keywords"]) or "-"], ["seller id", item["seller_id"]],
            ["votes", f"{item['thumbs_up']} up, {item['thumbs_down']} down"]]
    details = table([[key, str(value)] for key, value in rows])
    return f"Item {item['item_id']}: {shown(item['name'])}\n" + _indent(details)


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
    if not result["cart"]["lines"]:
        return "Saved an empty cart: your next login starts with an empty cart."
    return "Cart saved; it will be there at your next login.\n" + cart_text(result)


Units = dict[int, int]  # item id -> units in the cart


def units_of(cart: dict) -> Units:
    return {line["item_id"]: line["quantity"] for line in cart["lines"]}


class CartKeeper(SessionHooks):
    """The session's cart as this CLI last saw it, and as last saved: says what a cart
    command really did, and before the session ends offers to save unsaved changes.

    At login the session's cart is the saved one; only this CLI holds the session,
    so every change to it goes through here.
    """

    CHANGES = ("AddItemToCart", "RemoveItemFromCart", "ClearCart", "SaveCart")

    def __init__(self) -> None:
        # None: not known (not seen since login, or a change's outcome is unknown)
        self.cart: Units | None = None
        self.saved: Units | None = None  # None: not seen since login (the cart as first seen)

    def forget(self) -> None:
        self.cart = self.saved = None

    def unsure(self) -> None:
        self.cart = None  # a change may or may not have been made: look again before the next

    def before(self, shell: Shell, command: Command, args: dict) -> None:
        if command.op not in self.CHANGES:
            return
        if self.cart is None:
            self.cart = units_of(shell.call("DisplayCart", {})["cart"])
            if self.saved is None:
                self.saved = self.cart
        item = args.get("item_id")
        if command.op == "RemoveItemFromCart" and item not in self.cart:
            raise CliError(f"Item {item} is not in your cart; nothing was taken out.")

    def after(self, shell: Shell, command: Command, args: dict, result: dict,
              text: str) -> str:
        before = self.cart or {}
        if command.op == "MakePurchase":
            self.cart = self.saved = {}
        elif "cart" in result:
            self.cart = units_of(result["cart"])
            if self.saved is None or command.op == "SaveCart":
                self.saved = self.cart
        item, units = args.get("item_id"), args.get("quantity", 0)
        if command.op == "RemoveItemFromCart" and units > before.get(item, 0):
            return f"Your cart held only {before[item]} of item {item}; took them all out.\n" \
                + text
        if command.op == "ClearCart" and not before:
            return "Your cart was already empty."
        return text

    def may_end(self, shell: Shell) -> bool:
        if self.cart is None or self.cart == self.saved:
            return True
        if not shell.interactive:
            shell.note("Note: the cart's unsaved changes are lost at logout (save keeps them).")
            return True
        answer = prompts.confirm("Your cart has changes that are not saved and will be lost. "
                                 "Save the cart first?")
        if answer is None:
            return False
        if answer:
            try:
                shell.call("SaveCart", {})
                self.saved = self.cart
                print("Cart saved.")
            except CliError as error:
                print(error, file=sys.stderr)
        return True


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


ITEM = Arg("item_id", "Item id", ITEM_ID, read_whole)

COMMANDS = [
    Command("search", "SearchItemsForSale", "items for sale in a category", (
        Arg("category", "Category (0-99)", CATEGORY, read_whole),
        Arg("keywords", "Keywords, up to 5 of up to 8 letters, e.g. desk,light",
            Omittable(KEYWORDS, []), read_words),
        Arg("limit", "At most this many items (1-500)", SEARCH_LIMIT, read_whole,
            label="The limit"),
    ), run=search),
    Command("item", "GetItem", "one item in detail", (ITEM,), show=item_text),
    Command("add", "AddItemToCart", "put units of an item in your cart",
            (ITEM, Arg("quantity", "Units", QUANTITY, read_whole)), show=cart_text,
            check="cart"),
    Command("remove", "RemoveItemFromCart", "take units of an item out of your cart",
            (ITEM, Arg("quantity", "Units to take out", QUANTITY, read_whole)),
            show=cart_text, check="cart"),
    Command("cart", "DisplayCart", "show your cart", show=cart_text),
    Command("save", "SaveCart", "keep your cart for your next login", show=saved_text,
            check="cart"),
    Command("clear", "ClearCart", "empty your cart",
            show=lambda result: "Cart emptied; save to empty your saved cart too.",
            check="cart"),
    Command("buy", "MakePurchase", "buy everything in your cart", (
        Arg("card_name", "Name on the card", CardField("card_name")),
        Arg("card_number", "Card number", CardField("card_number"), digits_only),
        Arg("expiry", "Expiry (MM/YY)", CardField("expiry")),
    ), show=purchase_text, check="purchases"),
    Command("purchases", "GetBuyerPurchases", "what you have bought, 100 at a time", (MORE,),
            show=purchases_text, paged=True),
    Command("rate", "ProvideFeedback", "vote up or down on an item you bought",
            (ITEM, Arg("vote", "Vote (up or down)", VOTE, str.lower, metavar="up|down")),
            show=lambda result: "Thanks, your vote is counted.", check="item {item_id}"),
    Command("rating", "GetSellerRating", "a seller's thumbs up and down",
            (Arg("seller_id", "Seller id", SELLER_ID, read_whole),), show=rating_text),
]


def main(argv: list[str] | None = None) -> None:
    cli_main("buyer", COMMANDS, "BUYER_SERVER", DEFAULT_BUYER_FRONTEND_PORT, "search 3 desk,light",
             argv, CartKeeper())


if __name__ == "__main__":
    main()
