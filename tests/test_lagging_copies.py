"""A frontend whose link to a database lags (its Follow replies held, not lost): every reply
that acknowledges a change of followed data, first send or resend, from any branch, leaves
only once that frontend's copy shows the change (contract §11; issue 28, 1).

A second seller and buyer frontend reach both databases through proxies; a test makes one of
those links lag (each ``Follow`` reply held ``LAG`` seconds), the one to the database whose
copy its write changes. Each write is sent with one key at two frontends at once (one send
applies it, the other finds its outcome, at any step), or once with its first internal reply
lost early (the frontend's pool resends it while the first is still being answered); right
after each acknowledgement, the lagging frontend must show the change.
"""
from __future__ import annotations

import contextlib
import itertools
import threading
from types import SimpleNamespace
from typing import Iterator

import pytest
from helpers.market import CARD, Api, listing, start_market, wait_until
from helpers.proxy import ReplyDropper

LAG = 0.1  # seconds each Follow reply to the lagging frontends is held
ROUNDS = 4
_keys = itertools.count()


def key(what: str) -> str:
    return f"lagging-{what}-{next(_keys):08d}"


@pytest.fixture(scope="module")
def lagging():
    market = start_market(db_timeout=5.0)
    links = [ReplyDropper(market.product_db.address), ReplyDropper(market.customer_db.address)]
    wiring = ("--product-db", links[0].addr, "--customer-db", links[1].addr, "--db-timeout", "5")
    seller_b = market.another_frontend("seller_server.py", *wiring)
    buyer_b = market.another_frontend("buyer_server.py", *wiring)
    apis = [market.seller(), market.buyer(), market.client_of(seller_b),
            market.client_of(buyer_b)]

    def copies_in_use() -> bool:
        return all(copy["fresh"] for api in apis for copy in api("Stats")["copies"].values())
    assert wait_until(copies_in_use, timeout=10)
    yield SimpleNamespace(market=market, seller_b=seller_b, buyer_b=buyer_b,
                          product_link=links[0], customer_link=links[1])
    for link in links:
        link.close()
    market.stop()


@contextlib.contextmanager
def lag(link: ReplyDropper) -> Iterator[None]:
    """The second frontends' ``link`` lags while in the block."""
    link.delay("Follow", LAG)
    try:
        yield
    finally:
        link.delay("Follow", 0)


def at_both(first: Api, second: Api, op: str, write_key: str, check, **args) -> list:
    """``op`` with one key at two frontends at the same moment; after each acknowledgement,
    ``check(result)`` at once (what the lagging frontend shows). The checks' results."""
    barrier = threading.Barrier(2)
    seen: list = []

    def send(api: Api) -> None:
        barrier.wait(10)
        result = api.keyed(op, write_key, **args)
        seen.append(check(result))

    threads = [threading.Thread(target=send, args=(api,)) for api in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return seen


def people(lagging, unique) -> tuple[Api, Api, Api, Api, int]:
    """A seller at both seller frontends, a buyer at both buyer frontends (one session
    each), and an item of the seller with plenty of units."""
    market = lagging.market
    seller = market.seller()
    seller.register(unique("sue"))
    seller_b = market.client_of(lagging.seller_b, seller.session)
    buyer = market.buyer()
    buyer.register(unique("bea"))
    buyer_b = market.client_of(lagging.buyer_b, buyer.session)
    return seller, seller_b, buyer, buyer_b, listing(seller, quantity=1000)


def shown(buyer_b: Api, item_id: int) -> dict:
    return buyer_b("GetItem", item_id=item_id)["item"]


def test_a_purchase_sent_at_two_frontends_is_shown_by_each_when_acknowledged(lagging, unique):
    seller, _, buyer, buyer_b, item_id = people(lagging, unique)
    with lag(lagging.product_link):
        for round_ in range(ROUNDS):
            buyer("AddItemToCart", item_id=item_id, quantity=1)
            left = 1000 - (round_ + 1)
            seen = at_both(buyer, buyer_b, "MakePurchase", key("buy"),
                           lambda _: shown(buyer_b, item_id)["quantity"], **CARD)
            assert seen == [left, left], seen


def test_a_purchase_whose_reservation_reply_is_lost_is_shown_when_acknowledged(lagging,
                                                                              unique):
    _, _, buyer, buyer_b, item_id = people(lagging, unique)
    with lag(lagging.product_link):
        for round_ in range(ROUNDS):
            buyer_b("AddItemToCart", item_id=item_id, quantity=1)
            lagging.product_link.drop("ReserveUnits", early=True)
            buyer_b.keyed("MakePurchase", key("lost"), **CARD)
            assert shown(buyer_b, item_id)["quantity"] == 1000 - (round_ + 1)


def test_a_vote_sent_at_two_frontends_is_shown_by_each_when_acknowledged(lagging, unique):
    seller, _, buyer, buyer_b, _ = people(lagging, unique)
    items = [listing(seller) for _ in range(ROUNDS)]
    for item_id in items:
        buyer("AddItemToCart", item_id=item_id, quantity=1)
    buyer("MakePurchase", **CARD)
    seller_id = buyer_b("GetItem", item_id=items[0])["item"]["seller_id"]
    with lag(lagging.product_link):
        for count, item_id in enumerate(items, 1):
            seen = at_both(buyer, buyer_b, "ProvideFeedback", key("vote"), lambda _: (
                shown(buyer_b, item_id)["thumbs_up"],
                buyer_b("GetSellerRating", seller_id=seller_id)["thumbs_up"]),
                item_id=item_id, vote="up")
            assert seen == [(1, count), (1, count)], seen


def test_seller_writes_sent_at_two_frontends_are_shown_when_acknowledged(lagging, unique):
    seller, seller_b, _, buyer_b, item_id = people(lagging, unique)
    with lag(lagging.product_link):
        for round_ in range(ROUNDS):
            price = 10 + round_
            seen = at_both(seller, seller_b, "ChangeItemPrice", key("price"),
                           lambda _: shown(buyer_b, item_id)["price"], item_id=item_id,
                           price=price)
            assert seen == [price, price], seen
            seen = at_both(seller, seller_b, "UpdateUnitsForSale", key("units"),
                           lambda _: shown(buyer_b, item_id)["quantity"], item_id=item_id,
                           quantity=1)
            assert seen == [999 - round_] * 2, seen
            seen = at_both(seller, seller_b, "RegisterItemForSale", key("item"),
                           lambda result: shown(buyer_b, result["item_id"])["name"], name="new",
                           category=4, keywords=[], condition="new", price=1, quantity=1)
            assert seen == ["new", "new"], seen


def test_a_new_seller_sent_at_two_frontends_is_shown_when_acknowledged(lagging, unique):
    market = lagging.market
    with lag(lagging.customer_link):
        _, _, _, buyer_b, _ = people(lagging, unique)
        for _ in range(ROUNDS):
            here, there = market.seller(), market.client_of(lagging.seller_b)
            seen = at_both(here, there, "CreateAccount", key("seller"), lambda result: buyer_b(
                "GetSellerRating", seller_id=result["seller_id"])["thumbs_up"],
                username=unique("sam"), password="pw")
            assert seen == [0, 0], seen
