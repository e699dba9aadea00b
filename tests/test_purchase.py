"""MakePurchase (spec section 5): card checks, all or nothing, history, counters,
the two-database failure path, and a race for the last units."""
from __future__ import annotations

import datetime
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.market import (
    CARD,
    at_once,
    failure,
    listing,
    start_market,
    units,
    wait_until,
)

from market.net.client import Client
from protocol import ApiError

PURCHASE_FIELDS = {"purchase_id", "time", "lines", "total", "card_last4"}
LINE_FIELDS = {"item_id", "name", "quantity", "price", "line_total", "seller_id"}


def luhn(payload: str) -> str:
    """``payload`` with the Luhn check digit appended."""
    total = 0
    for position, digit in enumerate(reversed(payload)):
        value = int(digit) * (1 if position % 2 else 2)
        total += value - 9 if value > 9 else value
    return payload + str(-total % 10)


def month_text(year: int, month: int) -> str:
    return f"{month:02d}/{year % 100:02d}"


def this_and_last_month() -> tuple[str, str]:
    today = datetime.date.today()
    last = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return month_text(today.year, today.month), month_text(*last)


def snapshot(buyer, item_ids) -> tuple:
    """Everything a rejected purchase must leave unchanged, as the buyer sees it."""
    return (buyer("DisplayCart"), buyer("GetBuyerPurchases"),
            [units(buyer, item_id) for item_id in item_ids])


# -- the card -----------------------------------------------------------------

def test_rejected_cards_change_nothing(seller, buyer):
    item_id = listing(seller)
    buyer("AddItemToCart", item_id=item_id, quantity=2)
    buyer("SaveCart")
    before = snapshot(buyer, [item_id])
    _, last_month = this_and_last_month()
    rejected = [
        {"card_name": ""}, {"card_name": "n" * 65}, {"card_name": "line\nbreak"},
        {"card_number": "4111111111111112"},  # fails Luhn
        {"card_number": luhn("4" * 11)},  # 12 digits
        {"card_number": luhn("4" * 19)},  # 20 digits
        {"card_number": "4111 1111 1111 1111"}, {"card_number": "4111-1111-1111-1111"},
        {"card_number": ""}, {"card_number": "abcdabcdabcdabcd"},
        {"card_number": "\u0664\u0661\u0661\u0661" * 4},  # Arabic-Indic digits
        {"expiry": last_month}, {"expiry": "01/00"}, {"expiry": "1/30"}, {"expiry": "01/2030"},
        {"expiry": "13/30"}, {"expiry": "00/30"}, {"expiry": "01-30"}, {"expiry": "ab/cd"},
        {"expiry": ""}, {"expiry": " 1/30"}, {"expiry": "12/99 "},
        {"card_number": "4" * 80}, {"card_name": "n" * 300}, {"expiry": "1" * 100},  # long
    ]
    for change in rejected:
        error = failure(buyer, "MakePurchase", **{**CARD, **change})
        assert error.code == "conflict", change
        assert "card" in error.message.lower(), (change, error.message)
    for change in [{"card_number": 4111111111111111}, {"expiry": 1299}, {"card_name": None}]:
        assert buyer.error("MakePurchase", **{**CARD, **change}) == "bad_request", change
    for field in CARD:
        args = {k: v for k, v in CARD.items() if k != field}
        assert buyer.error("MakePurchase", **args) == "bad_request", field
    assert buyer.error("MakePurchase", **CARD, cvv="123") == "bad_request"
    assert snapshot(buyer, [item_id]) == before


def test_accepted_cards(seller, buyer):
    item_id = listing(seller, quantity=100)
    this_month, _ = this_and_last_month()
    accepted = [{"card_name": "n"}, {"card_name": "n" * 64},
                {"card_number": luhn("4" * 12)},  # 13 digits
                {"card_number": luhn("5" * 18)},  # 19 digits
                {"expiry": this_month},  # valid until the end of its month
                {"expiry": "01/99"}]
    for change in accepted:
        buyer("AddItemToCart", item_id=item_id, quantity=1)
        card = {**CARD, **change}
        purchase = buyer("MakePurchase", **card)["purchase"]
        assert purchase["card_last4"] == card["card_number"][-4:], change
    assert len(buyer("GetBuyerPurchases")["purchases"]) == len(accepted)
    assert units(buyer, item_id) == 100 - len(accepted)


# -- all or nothing -------------------------------------------------------------

def test_empty_cart_is_a_conflict(buyer):
    error = failure(buyer, "MakePurchase", **CARD)
    assert error.code == "conflict"
    assert buyer("GetBuyerPurchases")["purchases"] == []


def test_a_line_lacking_units_fails_the_whole_purchase(seller, buyer):
    plenty = listing(seller, "plenty", quantity=10)
    scarce = listing(seller, "scarce", quantity=3)
    buyer("AddItemToCart", item_id=plenty, quantity=2)
    buyer("AddItemToCart", item_id=scarce, quantity=3)
    seller("UpdateUnitsForSale", item_id=scarce, quantity=1)
    before = snapshot(buyer, [plenty, scarce])
    assert [line["available"] for line in before[0]["cart"]["lines"]] == [True, False]
    error = failure(buyer, "MakePurchase", **CARD)
    assert error.code == "conflict"
    assert str(scarce) in error.message or "scarce" in error.message, error.message
    assert snapshot(buyer, [plenty, scarce]) == before
    assert seller("GetSellerRating")["items_sold"] == 0
    # Once the line fits again, the same cart buys.
    buyer("RemoveItemFromCart", item_id=scarce, quantity=1)
    buyer("MakePurchase", **CARD)
    assert (units(buyer, plenty), units(buyer, scarce)) == (8, 0)


def test_successful_purchase(market, unique, buyer):
    alice, bob = market.seller(), market.seller()
    alice_id, bob_id = alice.register(unique("alice")), bob.register(unique("bob"))
    dime = listing(alice, "dime", price=0.1, quantity=10)
    mug = listing(bob, "mug", price=2.5, quantity=5)
    buyer("AddItemToCart", item_id=dime, quantity=3)
    buyer("AddItemToCart", item_id=mug, quantity=2)
    buyer("SaveCart")

    purchase = buyer("MakePurchase", **{**CARD, "card_number": "4012888888881881"})["purchase"]
    assert set(purchase) == PURCHASE_FIELDS
    assert all(set(line) == LINE_FIELDS for line in purchase["lines"])
    assert purchase["lines"] == [
        {"item_id": dime, "name": "dime", "quantity": 3, "price": 0.1, "line_total": 0.3,
         "seller_id": alice_id},
        {"item_id": mug, "name": "mug", "quantity": 2, "price": 2.5, "line_total": 5,
         "seller_id": bob_id}]
    assert purchase["total"] == 5.3
    assert purchase["card_last4"] == "1881"
    assert isinstance(purchase["purchase_id"], str) and purchase["purchase_id"]
    stamp = datetime.datetime.fromisoformat(purchase["time"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds() < 60

    assert (units(buyer, dime), units(buyer, mug)) == (7, 3)
    assert alice("GetSellerRating")["items_sold"] == 3
    assert bob("GetSellerRating")["items_sold"] == 2
    history = buyer("GetBuyerPurchases")
    assert history["purchases"] == [purchase]
    assert history["items_purchased"] == 5
    text = json.dumps(history)
    assert "4012888888881881" not in text and CARD["card_name"] not in text
    assert buyer("DisplayCart")["cart"] == {"lines": [], "total": 0}
    buyer.login(buyer.name)  # the saved cart was emptied too
    assert buyer("DisplayCart")["cart"] == {"lines": [], "total": 0}
    assert failure(buyer, "MakePurchase", **CARD).code == "conflict"

    buyer("AddItemToCart", item_id=mug, quantity=1)
    second = buyer("MakePurchase", **CARD)["purchase"]
    assert second["purchase_id"] != purchase["purchase_id"]
    history = buyer("GetBuyerPurchases")
    assert history["purchases"] == [purchase, second]  # oldest first
    assert history["items_purchased"] == 6


def test_purchase_buys_the_session_cart_not_another_sessions(market, seller, buyer):
    item_id = listing(seller)
    other = market.buyer()
    other.login(buyer.name)
    other("AddItemToCart", item_id=item_id, quantity=4)
    buyer("AddItemToCart", item_id=item_id, quantity=1)
    assert buyer("MakePurchase", **CARD)["purchase"]["lines"][0]["quantity"] == 1
    assert [line["quantity"] for line in other("DisplayCart")["cart"]["lines"]] == [4]
    assert units(buyer, item_id) == 9


def test_reservations_are_idempotent_per_purchase_id(market, seller):
    """The product database side of the design: retries with one purchase id are harmless."""
    item_id = listing(seller, quantity=5)
    product = Client(market.product_db.address)
    try:
        def left() -> int:
            return product.call("GetItem", {"item_id": item_id})["item"]["quantity"]

        lines = [{"item_id": item_id, "quantity": 2}]
        product.call("ReserveUnits", {"purchase_id": "p1", "lines": lines})
        product.call("ReserveUnits", {"purchase_id": "p1", "lines": lines})
        assert left() == 3
        release = {"committed": [], "cancelled": ["p1"]}
        product.call("SettleReservations", release)
        product.call("SettleReservations", release)
        assert left() == 5
        with pytest.raises(ApiError) as caught:
            product.call("ReserveUnits", {"purchase_id": "p1", "lines": lines})
        assert caught.value.code == "conflict"
        product.call("SettleReservations", {"committed": [], "cancelled": ["p2"]})  # before it arrived
        with pytest.raises(ApiError):
            product.call("ReserveUnits", {"purchase_id": "p2", "lines": lines})
        assert left() == 5
    finally:
        product.close()


# -- a database dies between the two steps ---------------------------------------

def test_purchase_is_undone_when_the_customer_db_dies_midway(unique, tmp_path):
    # With a data directory: a memory-only database restarted is a new market, refused
    # beside its partner (tests/test_restarts.py).
    market = start_market(buyer_args=("--test-commit-delay", "1", "--settle-after", "1"),
                          customer_args=("--data-dir", str(tmp_path / "customer")))
    product = Client(market.product_db.address)
    try:
        seller, buyer = market.seller(), market.buyer()
        seller.register(unique("seller"))
        buyer.register(unique("buyer"))
        item_id = listing(seller, quantity=5)
        buyer("AddItemToCart", item_id=item_id, quantity=2)

        def left() -> int:
            return product.call("GetItem", {"item_id": item_id})["item"]["quantity"]

        outcome = {}

        def purchase() -> None:
            try:
                outcome["result"] = buyer("MakePurchase", **CARD)
            except ApiError as error:
                outcome["error"] = error

        thread = threading.Thread(target=purchase)
        thread.start()
        assert wait_until(lambda: left() == 3, timeout=5, interval=0.02), "units never taken"
        market.customer_db.kill()
        thread.join(10)
        assert not thread.is_alive()
        assert "result" not in outcome, outcome
        assert outcome["error"].code == "unavailable"
        assert left() == 3  # no verdict yet: the customer database decides

        market.customer_db.restart()  # the purchase started there, never committed
        assert wait_until(lambda: left() == 5, timeout=5), "units never given back"
        newcomer = market.buyer()
        newcomer.register(unique("newcomer"))
        assert newcomer("GetItem", item_id=item_id)["item"]["quantity"] == 5
        newcomer("AddItemToCart", item_id=item_id, quantity=5)
        assert newcomer("MakePurchase", **CARD)["purchase"]["total"] == 5
        assert left() == 0
    finally:
        product.close()
        market.stop()


# -- a race for the last units ------------------------------------------------

def test_fifty_buyers_race_for_the_last_ten_units(market, seller, unique):
    racers, last_units = 50, 10
    item_id = listing(seller, "last", price=3, quantity=last_units + 5)
    seller("UpdateUnitsForSale", item_id=item_id, quantity=5)

    def ready_buyer(_) -> object:
        api = market.buyer()
        api.register(unique("racer"))
        api("AddItemToCart", item_id=item_id, quantity=1)
        return api

    with ThreadPoolExecutor(max_workers=2) as pool:  # hashing is CPU-bound
        buyers = list(pool.map(ready_buyer, range(racers)))

    product = Client(market.product_db.address)
    observed: list[int] = []
    racing = threading.Event()

    def watch_units() -> None:
        for _ in range(100_000):
            if not racing.is_set():
                return
            observed.append(product.call("GetItem", {"item_id": item_id})["item"]["quantity"])

    racing.set()
    watcher = threading.Thread(target=watch_units)
    watcher.start()
    outcomes = at_once(buyers, "MakePurchase", **CARD)
    racing.clear()
    watcher.join(10)
    product.close()

    assert outcomes == ["conflict"] * (racers - last_units) + ["ok"] * last_units
    assert observed and min(observed) >= 0
    assert buyers[0]("GetItem", item_id=item_id)["item"]["quantity"] == 0
    histories = [api("GetBuyerPurchases") for api in buyers]
    assert sum(h["items_purchased"] for h in histories) == last_units
    assert sum(line["quantity"] for h in histories for p in h["purchases"]
               for line in p["lines"]) == last_units
    assert seller("GetSellerRating")["items_sold"] == last_units
    losers = [api for api, h in zip(buyers, histories) if not h["purchases"]]
    assert len(losers) == racers - last_units
    assert all(api("DisplayCart")["cart"]["lines"][0]["available"] is False for api in losers)
