"""What the product database keeps, and what each journal record kind does to it.

``ProductData`` holds the three pieces (``catalog``, ``reservations``, ``votes``) and its
``appliers``: the only code that changes them, live and on replay alike. An applier returns
its record's outcome (what a keyed write's resend is told) and publishes each item's new
state to the frontends' copies (``market.replication.feed``).

Not thread-safe: the product database holds its lock around all of it.
"""
from __future__ import annotations

from typing import Any, Callable

from market.config import SNAPSHOT_PAGE
from market.product.catalog import Catalog, Item, item_result
from market.product.reservations import Reservation, Reservations, Taken
from market.product.votes import ItemVotes, Verdict
from protocol import encode_value


class ProductData:
    """The product database's state and its appliers (``publish``: the change feed's)."""

    def __init__(self, publish: Callable[[dict], int]) -> None:
        # Each piece's invariants are in its own docstring; together: every reservation's
        # and every counted vote's item is in the catalog.
        self.catalog = Catalog()
        self.reservations = Reservations()
        self.votes = ItemVotes()
        self.publish = publish
        self.appliers: dict[str, Callable[[dict], Any]] = {
            "item_registered": self._item_registered,
            "price_changed": self._price_changed,
            "units_removed": self._units_removed,
            "units_reserved": self._units_reserved,
            "reservations_settled": self._reservations_settled,
            "vote_recorded": self._vote_counted,
            "votes_refused": lambda r: self.votes.cancel(r["keys"]),
        }

    def followed_page(self, after: int) -> tuple[list[dict], int | None]:
        """A snapshot page of the catalog (what the frontends' copies follow)."""
        return self.catalog.feed_page(after, SNAPSHOT_PAGE)

    def _publish(self, items: list[Item]) -> None:
        for item in items:
            self.publish(item.state())

    # -- the appliers, one per record kind: each returns its record's outcome ---------------

    def _item_registered(self, r: dict) -> str:
        item = Item(r["item_id"], r["name"], r["category"], r["keywords"], r["condition"],
                    r["price"], r["quantity"], r["seller_id"])
        self.catalog.add(item)
        self.publish(item.raw())
        return encode_value({"item_id": r["item_id"]}).decode()

    def _price_changed(self, r: dict) -> str:
        self.catalog[r["item_id"]].price = r["price"]
        return self._item_changed(r["item_id"])

    def _units_removed(self, r: dict) -> str:
        self.catalog[r["item_id"]].quantity -= r["quantity"]
        return self._item_changed(r["item_id"])

    def _item_changed(self, item_id: int) -> str:
        """Publish the changed item; a seller's change's outcome: the item as it is after the
        change (reply JSON text)."""
        item = self.catalog[item_id]
        self._publish([item])
        return item_result(item).json.decode()

    def _units_reserved(self, r: dict) -> dict:
        taken = [Taken(self.catalog[line["item_id"]], line["quantity"]) for line in r["lines"]]
        self.reservations.hold(r["purchase_id"], taken)
        self._publish([line.item for line in taken])
        return reserved(self.reservations.get(r["purchase_id"]))

    def _reservations_settled(self, r: dict) -> dict:
        """(The record's fields keep format 3's names: ``sold`` committed, ``released``
        cancelled.)"""
        self.reservations.settle(r["sold"], r["released"])
        self._publish([line.item for purchase_id in r["released"]
                       for line in self.reservations.get(purchase_id).taken])
        return {}

    def _vote_counted(self, r: dict) -> dict:
        item = self.catalog[r["item_id"]]
        self.votes.record(r["key"], item, r["vote"])
        self._publish([item])
        return {"committed": self.votes.state(r["key"]) is Verdict.COMMITTED}

    # -- snapshots and figures --------------------------------------------------------------

    def dump(self) -> dict:
        return {"items": [item.raw() for item in self.catalog.all()],
                "reservations": self.reservations.dump(),
                "votes": self.votes.dump()}

    def restore(self, state: dict) -> None:
        for raw in state["items"]:
            self.catalog.add(Item(**raw))
        self.reservations.restore(state["reservations"], self.catalog.__getitem__)
        self.votes.restore(state["votes"])

    def stats(self) -> dict:
        return {"items": len(self.catalog), "pending_purchases": self.reservations.held_count()}

    def take_over(self, now: float) -> None:
        """Nothing here is renewed without a record."""


def reserved(reservation: Reservation) -> dict:
    """``ReserveUnits``' reply: each line as it was taken, at its price then (cents)."""
    return {"lines": [line.sold_line() for line in reservation.taken]}
