"""market/identity.py's rules for a pair of databases, and the identity a database keeps."""
from __future__ import annotations

import pytest
from helpers.inprocess import call, keyed

from market.frontend.identity import Action, Decision, Seen, decide
from product_db import ProductDB

NEW, OLD = Seen(None, True), Seen(None, False)  # no identity: empty, or holding data


def seen(market: str, empty: bool = False) -> Seen:
    return Seen(market, empty)


@pytest.mark.parametrize("customer, product, decision", [
    (seen("a"), seen("a"), Decision(Action.SERVE, "a")),
    (seen("a", True), seen("a"), Decision(Action.SERVE, "a")),
    (seen("a"), seen("b"), Decision(Action.REFUSE)),
    (seen("a", True), seen("b", True), Decision(Action.REFUSE)),
    (NEW, NEW, Decision(Action.CLAIM)),  # a new market
    (OLD, OLD, Decision(Action.CLAIM)),  # a market from before identities
    (NEW, OLD, Decision(Action.REFUSE)),  # a fresh database beside an old one
    (OLD, NEW, Decision(Action.REFUSE)),
    (seen("a", True), NEW, Decision(Action.CLAIM, "a")),  # a claim half done elsewhere
    (NEW, seen("a", True), Decision(Action.CLAIM, "a")),
    (seen("a"), NEW, Decision(Action.REFUSE)),  # a memory-only database restarted
    (NEW, seen("a"), Decision(Action.REFUSE)),
    (seen("a", True), OLD, Decision(Action.REFUSE)),
    (OLD, seen("a"), Decision(Action.REFUSE)),
])
def test_decide(customer, product, decision):
    assert decide(customer, product) == decision


@pytest.mark.parametrize("hello, expected", [
    ({"market": "0123456789abcdef", "empty": False}, seen("0123456789abcdef")),
    ({"market": None, "empty": True}, NEW),
    ({}, OLD),  # a database from before identities says nothing: it may hold data
    ({"market": 5, "empty": "yes"}, OLD),
])
def test_seen_from_hello(hello, expected):
    assert Seen.from_hello(hello) == expected


ITEM = {"seller_id": 1, "name": "lamp", "category": 1, "keywords": [], "condition": "new",
        "price": 100, "quantity": 1}


def test_a_market_is_claimed_once_and_kept_by_the_data_dir_and_its_snapshots(tmp_path):
    db = ProductDB()
    db.open_data_dir(str(tmp_path))
    assert (call(db, "Hello")["market"], call(db, "Hello")["empty"]) == (None, True)
    assert call(db, "ClaimMarket", market="00000000000000aa")["market"] == "00000000000000aa"
    assert call(db, "ClaimMarket", market="00000000000000bb")["market"] == "00000000000000aa"
    assert call(db, "Hello")["empty"] is True  # an identity alone is no data

    again = ProductDB()
    again.open_data_dir(str(tmp_path))
    assert (call(again, "Hello")["market"], call(again, "Hello")["empty"]) == (
        "00000000000000aa", True)
    again.storage.journal.snapshot_every = 1  # the next change writes a snapshot
    assert call(again, "RegisterItem", **ITEM, **keyed())["item_id"] == 1
    assert call(again, "Hello")["empty"] is False

    third = ProductDB()
    third.open_data_dir(str(tmp_path))
    hello = call(third, "Hello")
    assert (hello["market"], hello["empty"]) == ("00000000000000aa", False)
    assert call(third, "RegisterItem", **ITEM, **keyed())["item_id"] == 2


def test_a_memory_only_database_starts_with_no_market_and_ids_from_one():
    db = ProductDB()
    hello = call(db, "Hello")
    assert (hello["market"], hello["empty"]) == (None, True)
    assert isinstance(hello["time"], float)
    assert call(db, "RegisterItem", **ITEM, **keyed())["item_id"] == 1
    assert call(db, "Hello")["empty"] is False
