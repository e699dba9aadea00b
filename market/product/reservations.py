"""Reservations: the units one purchase holds in the product database.

A purchase id's reservation is *held* (its units taken from the items) until
the customer database's verdict reaches the product database, then *committed*
(units kept: sold) or *cancelled* (units given back). A verdict "cancelled" for an id
never seen is remembered as an empty cancelled reservation, so a late
``ReserveUnits`` with that id takes nothing. Settled reservations are
forgotten after a while (``forget_settled``); held ones wait for a verdict.

Not thread-safe: the product database holds its lock around all of it.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Callable

from market.product.catalog import Item
from protocol import ApiError


class ReservationState(enum.StrEnum):
    HELD = "held"
    COMMITTED = "sold"  # (the names data formats 1 to 4 store)
    CANCELLED = "released"


@dataclass(frozen=True)
class Taken:
    """Units of one item a reservation took."""

    item: Item
    units: int

    def sold_line(self) -> dict:
        """The line as ``ReserveUnits`` answers it: what was taken, at what price (cents)."""
        return {"item_id": self.item.item_id, "name": self.item.name, "quantity": self.units,
                "price": self.item.price, "seller_id": self.item.seller_id}


@dataclass
class Reservation:
    taken: list[Taken]
    state: ReservationState = ReservationState.HELD
    since: float = field(default_factory=time.monotonic)  # when it last changed state


class Reservations:
    """Every reservation remembered, by purchase id.

    Invariants: a purchase id takes units at most once (``hold`` only for an id
    not remembered) and gives them back at most once (only ``held`` ->
    ``cancelled`` gives back); ``committed`` and ``cancelled`` are final. With the
    catalog's, every quantity stays >= 0: ``hold`` takes nothing unless every
    item has the units.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Reservation] = {}

    def get(self, purchase_id: str) -> Reservation | None:
        return self._by_id.get(purchase_id)

    def hold(self, purchase_id: str, taken: list[Taken]) -> None:
        """Take the units of every line, all or nothing (``conflict`` if one is short)."""
        if purchase_id in self._by_id:
            raise ValueError(f"purchase {purchase_id} already has a reservation")
        for line in taken:
            if line.item.quantity < line.units:
                raise ApiError("conflict", f"Item {line.item.item_id} ({line.item.name}) has "
                                           f"{line.item.quantity} left, fewer than "
                                           f"{line.units}; nothing was bought.")
        for line in taken:
            line.item.quantity -= line.units
        self._by_id[purchase_id] = Reservation(taken)

    def settling(self, committed: list[str],
                 cancelled: list[str]) -> tuple[list[str], list[str]]:
        """The ids among these verdicts that ``settle`` would change: held ones to sell;
        held or unknown ones to release."""
        return ([p for p in committed if self._state(p) is ReservationState.HELD],
                [p for p in cancelled if self._state(p) in (None, ReservationState.HELD)])

    def settle(self, committed: list[str], cancelled: list[str]) -> None:
        """Commit the held ones of ``committed``; then cancel the held ones of ``cancelled``
        (units back) and remember the unknown ones as cancelled. Others stay as they are."""
        for purchase_id in committed:
            if self._state(purchase_id) is ReservationState.HELD:
                self._by_id[purchase_id] = Reservation(self._by_id[purchase_id].taken,
                                                       ReservationState.COMMITTED)
        for purchase_id in cancelled:
            state = self._state(purchase_id)
            if state is None:
                self._by_id[purchase_id] = Reservation([], ReservationState.CANCELLED)
            elif state is ReservationState.HELD:
                taken = self._by_id[purchase_id].taken
                for line in taken:
                    line.item.quantity += line.units
                self._by_id[purchase_id] = Reservation(taken, ReservationState.CANCELLED)

    def _state(self, purchase_id: str) -> ReservationState | None:
        reservation = self._by_id.get(purchase_id)
        return None if reservation is None else reservation.state

    def held_longer_than(self, seconds: float, limit: int) -> list[str]:
        """Ids of reservations held for ``seconds`` or more, oldest first."""
        deadline = time.monotonic() - seconds
        held = [(r.since, purchase_id) for purchase_id, r in self._by_id.items()
                if r.state is ReservationState.HELD and r.since <= deadline]
        return [purchase_id for _, purchase_id in sorted(held)[:limit]]

    def held_count(self) -> int:
        return sum(1 for r in self._by_id.values() if r.state is ReservationState.HELD)

    def forget_settled(self, older_than: float) -> None:
        """Drop the reservations settled more than ``older_than`` seconds ago."""
        deadline = time.monotonic() - older_than
        old = [purchase_id for purchase_id, r in self._by_id.items()
               if r.state is not ReservationState.HELD and r.since < deadline]
        for purchase_id in old:
            del self._by_id[purchase_id]

    def dump(self) -> list[dict]:
        return [{"purchase_id": purchase_id, "state": r.state.value,
                 "lines": [{"item_id": line.item.item_id, "quantity": line.units}
                           for line in r.taken]}
                for purchase_id, r in self._by_id.items()]

    def restore(self, entries: list[dict], item: Callable[[int], Item]) -> None:
        """Take back what ``dump`` gave (the items' quantities are restored already)."""
        for entry in entries:
            self._by_id[entry["purchase_id"]] = Reservation(
                [Taken(item(line["item_id"]), line["quantity"]) for line in entry["lines"]],
                ReservationState(entry["state"]))
