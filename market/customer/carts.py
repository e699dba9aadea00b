"""Carts of the customer database: each buyer session's cart, each buyer's saved cart, the cap.

A ``Cart`` is a value: it never changes once made, and every change makes a
new one. So a session's cart starts as the very object of its buyer's saved
cart and is copied only when the session first changes it (copy on write):
a thousand logins of a buyer with a thousand-line saved cart copy nothing.

A cart holds at most ``CART_MAX`` distinct items, counting those of the
session's started purchases, since a cancel puts them back.

Not thread-safe: the customer database holds its lock around all of it.
"""
from __future__ import annotations

from collections.abc import Iterable, KeysView
from dataclasses import dataclass

from market.config import CART_MAX
from protocol import ApiError

Lines = list[list[int]]  # [[item_id, units], ...] in the cart's order, as journaled and sent


class Cart:
    """Units per item, in the order items were first added. Immutable."""

    __slots__ = ("_units",)

    def __init__(self, lines: Iterable[Iterable[int]] = ()) -> None:
        self._units: dict[int, int] = {item_id: units for item_id, units in lines}

    def lines(self) -> Lines:
        return [[item_id, units] for item_id, units in self._units.items()]

    def units(self, item_id: int) -> int:
        return self._units.get(item_id, 0)

    def item_ids(self) -> KeysView[int]:
        return self._units.keys()

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._units

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cart) and self.lines() == other.lines()

    def __repr__(self) -> str:
        return f"Cart({self.lines()})"

    def with_units(self, item_id: int, units: int) -> Cart:
        """This cart with ``units`` of the item (none: the line goes)."""
        changed = Cart()
        changed._units = dict(self._units)
        if units > 0:
            changed._units[item_id] = units
        else:
            changed._units.pop(item_id, None)
        return changed

    def minus(self, lines: Lines) -> Cart:
        """This cart without the units of ``lines`` (what a purchase bought)."""
        left = dict(self._units)
        for item_id, units in lines:
            if left.get(item_id, 0) > units:
                left[item_id] -= units
            else:
                left.pop(item_id, None)
        return Cart(left.items())

    def after(self, lines: Lines) -> Cart:
        """``lines`` followed by this cart's lines, units of one item added (a cancel)."""
        merged = {item_id: units for item_id, units in lines}
        for item_id, units in self._units.items():
            merged[item_id] = merged.get(item_id, 0) + units
        return Cart(merged.items())


EMPTY = Cart()


@dataclass
class SessionCart:
    buyer_id: int
    cart: Cart


class Carts:
    """The cart of every buyer session and the saved cart of every buyer."""

    def __init__(self) -> None:
        # Invariants: every live buyer session has a cart here (opened at login,
        # closed at its end); Cart values are never changed, so sharing one
        # between a saved cart and any number of session carts is safe.
        self._of_session: dict[str, SessionCart] = {}
        self._saved: dict[int, Cart] = {}

    def of(self, token: str) -> Cart:
        return self._of_session[token].cart

    def saved(self, buyer_id: int) -> Cart:
        return self._saved.get(buyer_id, EMPTY)

    def open(self, token: str, buyer_id: int) -> None:
        """A new session's cart: its buyer's saved cart, not a copy."""
        self._of_session[token] = SessionCart(buyer_id, self.saved(buyer_id))

    def close(self, token: str) -> None:
        self._of_session.pop(token, None)

    def set(self, token: str, cart: Cart) -> None:
        self._of_session[token].cart = cart

    def save(self, token: str) -> None:
        """The session's cart becomes its buyer's saved cart (shared, not copied)."""
        mine = self._of_session[token]
        self._saved[mine.buyer_id] = mine.cart

    def take_bought(self, buyer_id: int, lines: Lines) -> None:
        """The saved cart loses what a purchase bought."""
        if buyer_id in self._saved:
            self._saved[buyer_id] = self._saved[buyer_id].minus(lines)

    def put_back(self, token: str, lines: Lines) -> None:
        """A cancelled purchase's lines go back into its session's cart, if still live,
        before any added meanwhile."""
        mine = self._of_session.get(token)
        if mine is not None:
            mine.cart = mine.cart.after(lines)

    def dump(self) -> dict:
        """A session cart that is still its buyer's saved cart is written as ``null``,
        so a restore shares it again."""
        return {"saved": [{"buyer_id": buyer_id, "cart": cart.lines()}
                          for buyer_id, cart in self._saved.items()],
                "sessions": [{"token": token, "buyer_id": mine.buyer_id,
                              "cart": None if mine.cart is self.saved(mine.buyer_id)
                              else mine.cart.lines()}
                             for token, mine in self._of_session.items()]}

    def restore(self, state: dict) -> None:
        for raw in state["saved"]:
            self._saved[raw["buyer_id"]] = Cart(raw["cart"])
        for raw in state["sessions"]:
            cart = self.saved(raw["buyer_id"]) if raw["cart"] is None else Cart(raw["cart"])
            self._of_session[raw["token"]] = SessionCart(raw["buyer_id"], cart)


def added(cart: Cart, item_id: int, quantity: int, available: int, held: set[int]) -> Cart:
    """``cart`` with ``quantity`` more units of the item, within the cap and ``available``.

    ``held`` are the items of the session's started purchases: they count toward the cap.
    """
    distinct = len(cart.item_ids() | held) if held else len(cart)
    if item_id not in cart and item_id not in held and distinct >= CART_MAX:
        raise ApiError("conflict", f"The cart already holds {CART_MAX} different items, "
                                   "the most it can; buy or remove some first.")
    wanted = cart.units(item_id) + quantity
    if wanted > available:
        raise ApiError("conflict", f"Only {available} units of item {item_id} are "
                                   f"available and the cart would hold {wanted}.")
    return cart.with_units(item_id, wanted)


def removed(cart: Cart, item_id: int, quantity: int) -> Cart:
    """``cart`` with ``quantity`` fewer units of the item (the line goes at zero)."""
    return cart.with_units(item_id, cart.units(item_id) - quantity)
