"""Restarting one memory-only database never hands one user's data to another.

A restarted memory-only database starts empty, but the other database still
holds ids it handed out; ids are never reused, so nothing held elsewhere can
be inherited by a new user.
"""
from __future__ import annotations

import pytest

from conftest import CARD, failure, listing, start_market, wait_until


@pytest.fixture
def market():
    m = start_market()
    yield m
    m.stop()


def restart(proc) -> None:
    proc.kill()
    proc.restart()


def serving(api, op: str, **args) -> bool:
    """True once ``api`` gets any reply but ``unavailable`` (the frontends reconnect)."""
    try:
        api(op, **args)
        return True
    except Exception as error:  # noqa: BLE001 - an ApiError or a transport error
        return getattr(error, "code", "") != "unavailable"


def test_a_new_seller_after_a_customer_db_restart_sees_none_of_the_old_items(market, unique):
    old = market.seller()
    old_id = old.register(unique("old"))
    item_id = listing(old, quantity=3)
    buyer = market.buyer()
    buyer.register(unique("bob"))
    buyer("AddItemToCart", item_id=item_id, quantity=1)
    buyer("MakePurchase", **CARD)

    restart(market.customer_db)
    new = market.seller()
    assert wait_until(lambda: serving(new, "CreateAccount", username=unique("probe"),
                                      password="pw"), timeout=10)
    new_id = new.register(unique("new"))
    assert new_id != old_id
    assert new("DisplayItemsForSale")["items"] == []
    assert failure(new, "ChangeItemPrice", item_id=item_id, price=1).code == "forbidden"
    assert failure(new, "UpdateUnitsForSale", item_id=item_id, quantity=1).code == "forbidden"
    rating = new("GetSellerRating")
    assert (rating["thumbs_up"], rating["thumbs_down"], rating["items_sold"]) == (0, 0, 0)

    buyer2 = market.buyer()
    buyer2.register(unique("bea"))
    buyer2("AddItemToCart", item_id=item_id, quantity=1)
    buyer2("MakePurchase", **CARD)
    assert new("GetSellerRating")["items_sold"] == 0  # the old seller's sale is not the new one's
    assert buyer2("GetBuyerPurchases")["items_purchased"] == 1


def test_a_cart_after_a_product_db_restart_never_shows_another_sellers_item(market, unique):
    seller = market.seller()
    seller.register(unique("sal"))
    first = listing(seller, name="lamp")
    buyer = market.buyer()
    buyer.register(unique("bo"))
    buyer("AddItemToCart", item_id=first, quantity=1)
    buyer("SaveCart")

    restart(market.product_db)
    other = market.seller()
    other.register(unique("other"))
    assert wait_until(lambda: serving(other, "DisplayItemsForSale"), timeout=10)
    new_item = listing(other, name="chair")
    assert new_item != first

    line, = buyer("DisplayCart")["cart"]["lines"]
    assert line["item_id"] == first and line["name"] != "chair" and line["available"] is False
    assert failure(buyer, "MakePurchase", **CARD).code in ("conflict", "not_found")
    assert buyer("GetBuyerPurchases")["purchases"] == []
