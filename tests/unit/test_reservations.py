"""market.product.reservations: every transition of a purchase's units (held, sold, released)."""
from __future__ import annotations

import pytest

from market.product.catalog import Item
from market.product.reservations import Reservations, ReservationState, Taken
from protocol import ApiError


def item(item_id: int, quantity: int) -> Item:
    return Item(item_id, f"i{item_id}", 0, [], "new", 250 * item_id, quantity, 7)


@pytest.fixture
def shop() -> tuple[Reservations, Item, Item]:
    return Reservations(), item(1, 5), item(2, 3)


def state(reservations: Reservations, purchase_id: str) -> ReservationState | None:
    reservation = reservations.get(purchase_id)
    return None if reservation is None else reservation.state


def test_hold_takes_every_line_and_answers_at_the_price_in_cents(shop):
    reservations, desk, lamp = shop
    reservations.hold("p", [Taken(desk, 2), Taken(lamp, 3)])
    assert (desk.quantity, lamp.quantity) == (3, 0)
    assert state(reservations, "p") is ReservationState.HELD
    assert [line.sold_line() for line in reservations.get("p").taken] == [
        {"item_id": 1, "name": "i1", "quantity": 2, "price": 250, "seller_id": 7},
        {"item_id": 2, "name": "i2", "quantity": 3, "price": 500, "seller_id": 7}]


def test_hold_is_all_or_nothing(shop):
    reservations, desk, lamp = shop
    with pytest.raises(ApiError) as caught:
        reservations.hold("p", [Taken(desk, 2), Taken(lamp, 4)])
    assert caught.value.code == "conflict"
    assert (desk.quantity, lamp.quantity) == (5, 3)
    assert reservations.get("p") is None


def test_a_purchase_id_holds_at_most_once(shop):
    reservations, desk, _ = shop
    reservations.hold("p", [Taken(desk, 1)])
    with pytest.raises(ValueError):
        reservations.hold("p", [Taken(desk, 1)])
    assert desk.quantity == 4


def test_held_then_sold_keeps_the_units_for_good(shop):
    reservations, desk, _ = shop
    reservations.hold("p", [Taken(desk, 2)])
    reservations.settle(["p"], [])
    assert state(reservations, "p") is ReservationState.COMMITTED
    reservations.settle([], ["p"])  # sold is final
    reservations.settle(["p"], [])
    assert state(reservations, "p") is ReservationState.COMMITTED and desk.quantity == 3


def test_held_then_released_gives_the_units_back_once(shop):
    reservations, desk, lamp = shop
    reservations.hold("p", [Taken(desk, 2), Taken(lamp, 1)])
    reservations.settle([], ["p"])
    reservations.settle([], ["p"])
    reservations.settle(["p"], [])  # released is final
    assert state(reservations, "p") is ReservationState.CANCELLED
    assert (desk.quantity, lamp.quantity) == (5, 3)


def test_a_release_before_the_hold_is_remembered(shop):
    reservations, desk, _ = shop
    reservations.settle([], ["early"])
    assert state(reservations, "early") is ReservationState.CANCELLED
    assert reservations.get("early").taken == []
    assert desk.quantity == 5


def test_selling_an_unknown_id_remembers_nothing(shop):
    reservations, _, _ = shop
    reservations.settle(["ghost"], [])
    assert reservations.get("ghost") is None


def test_settling_names_only_what_would_change(shop):
    reservations, desk, _ = shop
    reservations.hold("held", [Taken(desk, 1)])
    reservations.hold("sold", [Taken(desk, 1)])
    reservations.settle(["sold"], [])
    assert reservations.settling(["held", "sold", "ghost"], ["held", "sold", "ghost"]) == (
        ["held"], ["held", "ghost"])


def test_held_longer_than_lists_only_held_ones_oldest_first(shop):
    reservations, desk, _ = shop
    for purchase_id in ("first", "second", "third"):
        reservations.hold(purchase_id, [Taken(desk, 1)])
    reservations.settle(["second"], [])
    assert reservations.held_longer_than(0, 10) == ["first", "third"]
    assert reservations.held_longer_than(0, 1) == ["first"]
    assert reservations.held_longer_than(3600, 10) == []
    assert reservations.held_count() == 2


def test_forget_settled_keeps_the_held(shop):
    reservations, desk, _ = shop
    reservations.hold("held", [Taken(desk, 1)])
    reservations.hold("sold", [Taken(desk, 1)])
    reservations.settle(["sold"], ["released"])
    reservations.forget_settled(3600)
    assert reservations.get("sold") is not None  # settled just now
    reservations.forget_settled(-1)
    assert reservations.get("sold") is None and reservations.get("released") is None
    assert state(reservations, "held") is ReservationState.HELD


def test_dump_and_restore_agree(shop):
    reservations, desk, lamp = shop
    reservations.hold("held", [Taken(desk, 1), Taken(lamp, 2)])
    reservations.hold("sold", [Taken(desk, 1)])
    reservations.settle(["sold"], ["released"])
    again = Reservations()
    again.restore(reservations.dump(), {1: desk, 2: lamp}.__getitem__)
    assert again.dump() == reservations.dump()
    assert again.get("held").taken[1].item is lamp
