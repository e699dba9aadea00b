"""market/carts.py: Cart values, the cap, and session carts that share the saved cart."""
from __future__ import annotations

import pytest
from helpers.inprocess import create_account, dispatch, keyed, log_in

import customer_db
from market.config import CART_MAX
from market.customer.carts import EMPTY, Cart, Carts, added, removed
from protocol import ApiError


def test_a_cart_change_makes_a_new_cart_and_keeps_the_order_of_first_adding():
    cart = Cart([[3, 1], [1, 2]])
    more = added(cart, 3, 2, available=5, held=set())
    assert more.lines() == [[3, 3], [1, 2]] and cart.lines() == [[3, 1], [1, 2]]
    assert added(cart, 9, 1, available=1, held=set()).lines() == [[3, 1], [1, 2], [9, 1]]
    assert removed(more, 3, 1).lines() == [[3, 2], [1, 2]]
    assert removed(more, 3, 7).lines() == [[1, 2]]  # removing more than there is: the line goes
    assert removed(more, 8, 1) == more  # an item not in the cart: nothing changes
    assert not EMPTY and len(more) == 2 and 1 in more and 8 not in more


def test_a_cart_never_holds_more_units_than_are_available():
    cart = Cart([[1, 2]])
    assert added(cart, 1, 3, available=5, held=set()).units(1) == 5
    with pytest.raises(ApiError) as failure:
        added(cart, 1, 4, available=5, held=set())
    assert failure.value.code == "conflict" and "would hold 6" in failure.value.message


def test_the_cap_counts_the_items_of_started_purchases():
    full = Cart([[n, 1] for n in range(1, CART_MAX + 1)])
    assert added(full, 1, 1, available=9, held=set()).units(1) == 2  # an item already in it
    with pytest.raises(ApiError) as failure:
        added(full, CART_MAX + 1, 1, available=9, held=set())
    assert failure.value.code == "conflict"
    half = Cart([[n, 1] for n in range(1, CART_MAX // 2 + 1)])
    held = set(range(CART_MAX // 2 + 1, CART_MAX + 1))  # the other half is being bought
    with pytest.raises(ApiError):
        added(half, CART_MAX + 1, 1, available=9, held=held)
    assert added(half, CART_MAX, 1, available=9, held=held).units(CART_MAX) == 1  # held item
    assert len(added(half, CART_MAX + 1, 1, available=9, held=held - {CART_MAX})) \
        == CART_MAX // 2 + 1


def test_bought_units_leave_the_saved_cart_and_cancelled_lines_come_back_first():
    carts = Carts()
    carts.open("t", buyer_id=1)
    carts.set("t", Cart([[1, 3], [2, 1]]))
    carts.save("t")
    carts.take_bought(1, [[1, 2], [2, 1]])
    assert carts.saved(1).lines() == [[1, 1]]
    assert carts.of("t").lines() == [[1, 3], [2, 1]]  # the session's cart is its own value
    carts.set("t", Cart([[5, 1], [2, 1]]))
    carts.put_back("t", [[2, 2], [7, 1]])
    assert carts.of("t").lines() == [[2, 3], [7, 1], [5, 1]]
    carts.close("t")
    carts.put_back("t", [[2, 2]])  # its session is gone: nothing to put back into
    with pytest.raises(KeyError):
        carts.of("t")


def test_sessions_share_the_saved_cart_until_they_change_it():
    carts = Carts()
    carts.open("first", buyer_id=1)
    carts.set("first", Cart([[n, 1] for n in range(1, 1001)]))
    carts.save("first")
    saved = carts.saved(1)
    for n in range(1000):
        carts.open(f"s{n}", buyer_id=1)
    assert all(carts.of(f"s{n}") is saved for n in range(1000))  # nothing copied
    carts.set("s0", removed(carts.of("s0"), 1, 1))
    assert len(carts.of("s0")) == 999 and len(saved) == 1000 and carts.of("s1") is saved

    again = Carts()
    again.restore(carts.dump())
    assert all(again.of(f"s{n}") is again.saved(1) for n in range(1, 1000))
    assert again.of("s0").lines() == carts.of("s0").lines()
    assert again.dump() == carts.dump()


def test_a_thousand_logins_through_the_database_copy_no_saved_cart():
    db = customer_db.CustomerDB()
    create_account(db, "buyer", "ann")

    def login() -> str:
        return log_in(db, "buyer", "ann")

    def call(op: str, token: str, **args) -> dict:
        return dispatch(db, op, token, **args)

    first = login()
    for item_id in range(1, 1001):
        call("AddToCart", first, item_id=item_id, quantity=1, available=1, **keyed())
    call("SaveCart", first, **keyed())
    tokens = [login() for _ in range(1000)]
    live = tokens[-100:]  # the cap of 100 sessions ended the others
    saved = db.data.carts.saved(1)
    assert all(db.data.carts.of(token) is saved for token in live)
    call("RemoveFromCart", live[0], item_id=1, quantity=1, **keyed())
    assert len(call("GetCart", live[0])["cart"]) == 999
    assert len(call("GetCart", live[1])["cart"]) == 1000 and db.data.carts.of(live[1]) is saved
