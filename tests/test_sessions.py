"""Sessions (spec section 3): timeout, activity, logout, role scoping, several per user."""
from __future__ import annotations

import os
import time

import pytest
from helpers.market import keyed, start_market

from market.frontend.passwords import scrypt
from market.net.client import Client

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def short_market():
    """A marketplace whose sessions expire after one idle second."""
    m = start_market(session_timeout=TIMEOUT)
    yield m
    m.stop()


def is_rejected(api, op: str) -> bool:
    return api.error(op) == "invalid_session"


def test_idle_sessions_expire_and_active_ones_live(short_market, unique):
    """Five sessions share one window of 2.5 timeouts, so the test costs ~3 s.

    Slow set-up (password hashing) comes first; the sessions under test are
    fresh logins made right before the window, the active ones last.
    """
    m = short_market
    idle_seller, idle_buyer, failing_buyer = m.seller(), m.buyer(), m.buyer()
    active_seller, active_buyer = m.seller(), m.buyer()
    for api in [idle_seller, idle_buyer, failing_buyer, active_seller, active_buyer]:
        api.name = unique("user")
        api("CreateAccount", username=api.name, password="pw")
    active_seller.login(active_seller.name)
    kept, lost = [active_seller("RegisterItemForSale", name=name, category=1, keywords=[],
                                condition="new", price=1, quantity=9)["item_id"]
                  for name in ("kept", "lost")]
    idle_buyer.login(idle_buyer.name)
    idle_buyer("AddItemToCart", item_id=kept, quantity=1)
    idle_buyer("SaveCart")

    for api in [idle_seller, idle_buyer, failing_buyer]:
        api.login(api.name)
    idle_buyer("AddItemToCart", item_id=lost, quantity=1)  # never saved
    for api in [active_seller, active_buyer]:
        api.login(api.name)
    start = time.monotonic()
    while time.monotonic() < start + TIMEOUT * 2.5:
        active_seller("GetSellerRating")
        active_buyer("SearchItemsForSale", category=1)
        # Failed requests are not activity: only successful ones refresh a session.
        assert failing_buyer.error("SearchItemsForSale", category=100) == "bad_request"
        time.sleep(TIMEOUT / 10)

    assert len(active_seller("DisplayItemsForSale")["items"]) == 2
    assert active_buyer("DisplayCart")["cart"]["lines"] == []
    for api, op in [(idle_seller, "DisplayItemsForSale"), (idle_seller, "Logout"),
                    (idle_buyer, "DisplayCart"), (failing_buyer, "DisplayCart")]:
        assert is_rejected(api, op), op
    idle_buyer.login(idle_buyer.name)
    assert [line["item_id"] for line in idle_buyer("DisplayCart")["cart"]["lines"]] == [kept]


@pytest.mark.parametrize("role", ["seller", "buyer"])
def test_logout_removes_the_session_at_once(market, unique, role):
    api = getattr(market, role)()
    name = unique(role)
    api.register(name)
    token = api.session
    assert api("Logout") == {}
    assert is_rejected(api, "Logout")
    assert is_rejected(api, "DisplayItemsForSale" if role == "seller" else "DisplayCart")
    api.login(name)
    assert api.session != token


def test_tokens_are_role_scoped(market, unique):
    seller, buyer = market.seller(), market.buyer()
    seller_id = seller.register(unique("seller"))
    buyer.register(unique("buyer"))
    seller_token, buyer_token = seller.session, buyer.session
    seller.session, buyer.session = buyer_token, seller_token
    for op in ["GetSellerRating", "DisplayItemsForSale", "Logout"]:
        assert is_rejected(seller, op), op
    assert seller.error("RegisterItemForSale", name="n", category=1, keywords=[],
                        condition="new", price=1, quantity=1) == "invalid_session"
    for op in ["DisplayCart", "GetBuyerPurchases", "SaveCart", "Logout"]:
        assert is_rejected(buyer, op), op
    assert buyer.error("GetSellerRating", seller_id=seller_id) == "invalid_session"
    assert buyer.error("SearchItemsForSale", category=1) == "invalid_session"
    # The failed cross-role calls (Logout included) did not harm the real sessions.
    seller.session, buyer.session = seller_token, buyer_token
    assert seller("DisplayItemsForSale") == {"items": [], "next": None}
    assert buyer("DisplayCart")["cart"]["lines"] == []


def test_several_sessions_of_one_user_are_independent(market, unique):
    name = unique("seller")
    first = market.seller()
    seller_id = first.register(name)
    tokens = {first.session}
    others = []
    for _ in range(3):
        api = market.seller()
        assert api.login(name)["seller_id"] == seller_id
        tokens.add(api.session)
        others.append(api)
    assert len(tokens) == 4 and all(len(token) >= 22 for token in tokens)
    item_id = others[0]("RegisterItemForSale", name="n", category=1, keywords=[],
                        condition="new", price=1, quantity=1)["item_id"]
    assert [i["item_id"] for i in first("DisplayItemsForSale")["items"]] == [item_id]
    others[1]("Logout")
    assert is_rejected(others[1], "GetSellerRating")
    for api in [first, others[0], others[2]]:
        assert api("GetSellerRating")["seller_id"] == seller_id


def test_an_account_keeps_at_most_100_sessions_the_least_recently_used_ends(market, unique):
    """101 logins: the first session ends, the other 100 live. The account is made at the
    customer database with a cheap hash (cost 10), so the logins cost little (once the
    market is claimed: a frontend would refuse a customer database written to first)."""
    name, salt = unique("many"), os.urandom(16)
    market.buyer().register(unique("first"))  # a frontend claims the market first
    customer = Client(market.customer_db.address)
    try:
        customer.call("CreateAccount", {"role": "buyer", "username": name, "salt": salt.hex(),
                                        "hash": scrypt("pw", salt, 10).hex(), "cost": 10,
                                        **keyed()})
    finally:
        customer.close()
    apis = [market.buyer() for _ in range(101)]
    for api in apis:
        api.login(name)
    assert is_rejected(apis[0], "DisplayCart")
    assert all(api("DisplayCart")["cart"]["lines"] == [] for api in apis[1:])
