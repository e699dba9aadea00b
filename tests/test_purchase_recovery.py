"""Purchases left unfinished (a frontend or database died midway) are settled later."""
from __future__ import annotations

import os
import threading
import time

import pytest
from helpers.market import CARD, keyed, start_market, wait_until

from market.frontend.passwords import scrypt
from market.keys import fresh_key
from market.net.client import Client
from protocol import ApiError


@pytest.fixture
def slow_market():
    """Purchases pause 1 s between taking units and committing; settling after 1 s."""
    m = start_market(buyer_args=("--test-commit-delay", "1", "--settle-after", "1"))
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
    assert errors == ["deadline_exceeded"]  # the client's: no reply to a write
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
    customer = Client(slow_market.customer_db.address)

    def pending() -> list[str]:
        return product.call("HeldReservations", {"older_than": 0, "limit": 10})["purchase_ids"]

    try:
        assert pending() == []  # the frontend marked the completed purchase sold at once
        # A purchase committed whose "sold" never reached the product database (its
        # frontend died right after the commit) stays pending until the settling
        # thread finds it committed.
        buyer("AddItemToCart", item_id=item_id, quantity=1)
        started = customer.call("StartPurchase", {"key": fresh_key(), "fingerprint": "0" * 32,
                                                  "card_problem": ""}, buyer.session)
        unsettled = started["purchase_id"]
        sold = product.call("ReserveUnits", {"purchase_id": unsettled, "lines": [
            {"item_id": line_item, "quantity": quantity}
            for line_item, quantity in started["cart"]]})
        customer.call("CommitPurchase", {"purchase_id": unsettled, "lines": sold["lines"],
                                         "card_last4": "1111"})
        assert pending() == [unsettled]
        assert wait_until(lambda: not pending(), timeout=6)
    finally:
        product.close()
        customer.close()
    time.sleep(0.5)
    assert units_left(slow_market, item_id) == 2
    assert buyer("GetBuyerPurchases")["items_purchased"] == 3


def test_a_commit_after_the_verdict_is_refused(slow_market):
    customer = Client(slow_market.customer_db.address)
    try:
        salt = os.urandom(16)
        password_hash = scrypt("p", salt, 10).hex()
        customer.call("CreateAccount", {"role": "buyer", "username": "cy", "salt": salt.hex(),
                                        "hash": password_hash, "cost": 10, **keyed()})
        session = customer.call("Login", {"role": "buyer", "username": "cy",
                                          "hash": password_hash})["session"]
        line = {"item_id": 1, "name": "x", "quantity": 1, "price": 100, "seller_id": 1}

        def start() -> dict:
            customer.call("AddToCart", {"item_id": 1, "quantity": 1, "available": 5,
                                        **keyed()}, session)
            return customer.call("StartPurchase", {**keyed(), "card_problem": ""}, session)

        def refused(purchase_id: str) -> str:
            with pytest.raises(ApiError) as caught:
                customer.call("CommitPurchase", {"purchase_id": purchase_id, "lines": [line],
                                                 "card_last4": "1111"})
            return caught.value.code

        # A verdict on an id never seen, then its commit.
        verdict = customer.call("ResolvePurchases", {"purchase_ids": ["late"]})
        assert verdict == {"committed": [], "cancelled": ["late"]}
        assert refused("late") == "conflict"
        # A purchase started (pending), cancelled by the verdict, then its commit.
        started = start()
        stalled = started["purchase_id"]
        assert started["cart"] == [[1, 1]]
        verdict = customer.call("ResolvePurchases", {"purchase_ids": [stalled]})
        assert verdict == {"committed": [], "cancelled": [stalled]}
        assert customer.call("GetCart", {}, session)["cart"] == [[1, 1]]  # the line is back
        assert refused(stalled) == "conflict"

        customer.call("ClearCart", keyed(), session)
        started = start()
        assert started["cart"] == [[1, 1]]
        committed = customer.call("CommitPurchase", {"purchase_id": started["purchase_id"],
                                                     "lines": [line], "card_last4": "1111"})
        assert committed["purchase"]["purchase_id"] == started["purchase_id"]
        assert customer.call("ResolvePurchases", {
            "purchase_ids": [started["purchase_id"], "late", stalled]}) \
            == {"committed": [started["purchase_id"]], "cancelled": ["late", stalled]}
    finally:
        customer.close()
