"""Purchases left unfinished (a frontend or database died midway) are settled later."""
from __future__ import annotations

import threading
import time

import pytest

from conftest import start_market, wait_until
from protocol import ApiError, Client

CARD = {"card_name": "Eve", "card_number": "4111111111111111", "expiry": "12/99"}


@pytest.fixture
def slow_market():
    """Purchases pause 1 s between taking units and committing; settling after 1 s."""
    m = start_market(buyer_env={"MARKET_TEST_COMMIT_DELAY": "1.0", "SETTLE_AFTER": "1"})
    yield m
    m.stop()


def units_left(market, item_id: int) -> int:
    product = Client(market.product_db.address)
    try:
        return product.call("GetItem", {"item_id": item_id})["item"]["quantity"]
    finally:
        product.close()


def listed_item(market, quantity: int = 5) -> int:
    seller = market.seller()
    seller.register("sam")
    return seller("RegisterItemForSale", name="kettle", category=4, keywords=[],
                  condition="used", price=2.5, quantity=quantity)["item_id"]


def test_units_come_back_when_the_buyer_frontend_dies_midway(slow_market):
    item_id = listed_item(slow_market)
    buyer = slow_market.buyer()
    buyer.register("bea")
    buyer("AddItemToCart", item_id=item_id, quantity=2)
    errors = []

    def purchase() -> None:
        try:
            buyer("MakePurchase", **CARD)
        except ApiError as error:
            errors.append(error.code)

    thread = threading.Thread(target=purchase)
    thread.start()
    assert wait_until(lambda: units_left(slow_market, item_id) == 3), "units never taken"
    slow_market.buyer_server.kill()
    thread.join(5)
    assert errors == ["unavailable"]
    assert units_left(slow_market, item_id) == 3  # nobody has settled it yet

    slow_market.buyer_server.restart()
    assert wait_until(lambda: units_left(slow_market, item_id) == 5, timeout=6)
    history = buyer("GetBuyerPurchases")
    assert (history["purchases"], history["items_purchased"]) == ([], 0)
    assert [line["quantity"] for line in buyer("DisplayCart")["cart"]["lines"]] == [2]
    assert buyer("MakePurchase", **CARD)["purchase"]["lines"][0]["quantity"] == 2
    assert units_left(slow_market, item_id) == 3


def test_completed_purchases_keep_their_units_when_settled(slow_market):
    item_id = listed_item(slow_market)
    buyer = slow_market.buyer()
    buyer.register("ben")
    buyer("AddItemToCart", item_id=item_id, quantity=2)
    buyer("MakePurchase", **CARD)
    product = Client(slow_market.product_db.address)
    try:
        assert product.call("PendingPurchases", {"older_than": 0, "limit": 10})["purchase_ids"]
        assert wait_until(lambda: not product.call(
            "PendingPurchases", {"older_than": 0, "limit": 10})["purchase_ids"], timeout=6)
    finally:
        product.close()
    time.sleep(0.5)
    assert units_left(slow_market, item_id) == 3
    assert buyer("GetBuyerPurchases")["items_purchased"] == 2


def test_a_commit_after_the_verdict_is_refused(slow_market):
    customer = Client(slow_market.customer_db.address)
    try:
        customer.call("CreateAccount", {"role": "buyer", "username": "cy", "password": "p"})
        session = customer.call("Login", {"role": "buyer", "username": "cy",
                                          "password": "p"})["session"]
        verdict = customer.call("ResolvePurchases", {"purchase_ids": ["late"]})
        assert verdict == {"sold": [], "released": ["late"]}
        line = {"item_id": 1, "name": "x", "quantity": 1, "price": 100, "seller_id": 1}
        with pytest.raises(ApiError) as caught:
            customer.call("CommitPurchase", {"purchase_id": "late", "lines": [line],
                                             "card_last4": "1111"}, session)
        assert caught.value.code == "conflict"
        committed = customer.call("CommitPurchase", {"purchase_id": "ok", "lines": [line],
                                                     "card_last4": "1111"}, session)
        assert committed["purchase"]["purchase_id"] == "ok"
        assert customer.call("ResolvePurchases", {"purchase_ids": ["ok", "late"]}) == {
            "sold": ["ok"], "released": ["late"]}
    finally:
        customer.close()
