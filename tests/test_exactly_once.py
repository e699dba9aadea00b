"""Spec section 9 (exactly once, whatever the timing) and 10 (no internal addresses):
each test reproduces one defect an adversarial user found, against real processes."""
from __future__ import annotations

import decimal
import json
import threading
import time
from decimal import Decimal

from helpers.market import (
    CARD,
    at_once,
    failure,
    listing,
    settling_rounds,
    stall,
    start_market,
    units,
    wait_until,
)
from helpers.wire import Wire, line_of

from market.net.client import Client
from protocol import ApiError


def raw_call(address, op: str, session: str, args: dict | None = None) -> dict:
    """One request over a plain socket; the reply's numbers parsed exactly (``Decimal``)."""
    message = {"op": op, "session": session, **({"args": args} if args else {})}
    with Wire(address, timeout=30) as wire:
        line = wire.exchange(line_of(message))
    return json.loads(line, parse_float=decimal.Decimal)


def failure_or_ok(call) -> str:
    try:
        return call()
    except ApiError as error:
        return error.code


def exact(value) -> Decimal:
    """A JSON number of a raw reply as an exact ``Decimal``."""
    assert isinstance(value, (int, Decimal)) and not isinstance(value, bool), value
    return Decimal(value)


# -- one cart, one purchase ------------------------------------------------------

def test_one_cart_is_bought_once(market, seller, unique):
    """Finding: two MakePurchase calls on one session at the same moment both bought the
    cart (two records, units taken twice)."""
    wrong = []
    for trial in range(20):
        item_id = listing(seller, quantity=5)
        first, second = market.buyer(), market.buyer()
        first.register(unique("twin"))
        second.session = first.session
        first("AddItemToCart", item_id=item_id, quantity=1)
        second("DisplayCart")  # both connections open before the race
        outcomes = at_once([first, second], "MakePurchase", **CARD)
        history = first("GetBuyerPurchases")
        seen = (outcomes, len(history["purchases"]), history["items_purchased"],
                units(first, item_id))
        if seen != (["conflict", "ok"], 1, 1, 4):
            wrong.append((trial, seen))
    assert wrong == [], "(trial, (outcomes, records, items_purchased, units left of 5))"


def test_a_line_added_during_a_purchase_is_never_lost(unique):
    """Finding: a line acknowledged by AddItemToCart while a purchase was in progress was
    neither bought nor left in the cart (the commit emptied the cart)."""
    market = start_market(buyer_args=("--test-commit-delay", "0.3"))
    try:
        seller = market.seller()
        seller.register(unique("seller"))
        first, second = listing(seller, "first"), listing(seller, "second")
        buying, adding = market.buyer(), market.buyer()
        buying.register(unique("buyer"))
        adding.session = buying.session
        buying("AddItemToCart", item_id=first, quantity=1)
        adding("DisplayCart")  # its connection is open before the purchase starts
        outcome = {}

        def purchase() -> None:
            try:
                outcome["purchase"] = buying("MakePurchase", **CARD)["purchase"]
            except ApiError as error:
                outcome["error"] = error

        thread = threading.Thread(target=purchase)
        thread.start()
        try:
            assert wait_until(lambda: units(adding, first) == 9, interval=0.01), \
                "the purchase never took its units"
            adding("AddItemToCart", item_id=second, quantity=1)
            assert thread.is_alive(), "the purchase ended before the line was added"
        finally:
            thread.join(10)
        assert "error" not in outcome, outcome
        bought = [line["item_id"] for line in outcome["purchase"]["lines"]]
        in_cart = [line["item_id"] for line in adding("DisplayCart")["cart"]["lines"]]
        assert first in bought and first not in in_cart
        assert (second in bought) + (second in in_cart) == 1, (bought, in_cart)
    finally:
        market.stop()


# -- unavailable means nothing changed ---------------------------------------------

def test_a_vote_counts_once_when_the_product_db_stalls(unique):
    """Finding: a vote answered `unavailable` while the product database stalled was
    applied when it woke up, so voting again counted the item's vote twice."""
    market = start_market(buyer_args=("--settle-after", "1"))  # settling every 0.5 s
    try:
        seller = market.seller()
        seller_id = seller.register(unique("seller"))
        item_id = listing(seller)
        buyer = market.client_of(market.buyer_server)
        buyer.register(unique("buyer"))
        buyer("AddItemToCart", item_id=item_id, quantity=1)
        buyer("MakePurchase", **CARD)

        resume = stall(market, market.product_db)
        try:
            # unavailable: the verdict came in time (refused); deadline_exceeded: it did not
            assert buyer.error("ProvideFeedback", item_id=item_id, vote="up") in (
                "unavailable", "deadline_exceeded")
        finally:
            resume()  # woken once the vote was answered, past its deadline (not after 6 s)

        def votes() -> tuple[int, int]:
            return (buyer("GetItem", item_id=item_id)["item"]["thumbs_up"],
                    buyer("GetSellerRating", seller_id=seller_id)["thumbs_up"])

        def vote_again() -> str:  # conflict while the first vote is still being settled
            buyer("ProvideFeedback", item_id=item_id, vote="up")
            return "ok"

        assert wait_until(lambda: failure_or_ok(vote_again) == "ok", timeout=10)
        assert votes() == (1, 1)
        settling_rounds(market, 2)  # and later still, the first attempt changes nothing
        assert votes() == (1, 1)
    finally:
        market.stop()


# -- expired is expired ---------------------------------------------------------------

def test_an_expired_session_stays_expired_after_a_crash(tmp_path, unique):
    """Finding: a session removed by the idle sweeper came back to life when the customer
    database was killed and restarted with --data-dir."""
    market = start_market(session_timeout=1, customer_args=("--data-dir", str(tmp_path / "c")))
    try:
        name = unique("buyer")
        idle, leaving = market.buyer(), market.buyer()
        idle.register(name)
        leaving.login(name)
        leaving("Logout")
        # Until the sweeper has ended the idle session (past the 1 s timeout; it runs every
        # 0.25 s), read in the customer database's Stats, which do not touch the session.
        customer_db = Client(market.customer_db.address)
        try:
            assert wait_until(lambda: customer_db.call("Stats")["data"]["live_sessions"] == 0,
                              timeout=10)
        finally:
            customer_db.close()
        market.customer_db.kill()
        market.customer_db.restart()

        def code_after_restart(api) -> str:  # only a connection error right after is retried
            for _ in range(20):
                code = api.error("DisplayCart")
                if code != "unavailable":
                    return code
                time.sleep(0.1)
            return code

        assert code_after_restart(idle) == "invalid_session"
        assert code_after_restart(leaving) == "invalid_session"
        assert market.buyer().login(name)["session"]  # the account itself survived
    finally:
        market.stop()


# -- card fields are ASCII -------------------------------------------------------------

def test_card_fields_accept_only_ascii_digits(seller, buyer):
    """Finding: expiry '1²/30' answered `internal` and '١٢/٩٩' (Arabic-Indic) bought the cart."""
    item_id = listing(seller)
    buyer("AddItemToCart", item_id=item_id, quantity=1)
    before = (buyer("DisplayCart"), buyer("GetBuyerPurchases"), units(buyer, item_id))
    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    fullwidth = str.maketrans("0123456789", "０１２３４５６７８９")
    number = CARD["card_number"]  # passes Luhn, and so does each of these read as digits
    changes = [{"expiry": "1²/30"}, {"expiry": "١٢/٩٩"}, {"expiry": "１２/９９"},
               {"expiry": "12/٩٩"}, {"expiry": "٠١/30"},
               {"card_number": number.translate(arabic)},
               {"card_number": number.translate(fullwidth)},
               {"card_number": number[:-1] + number[-1].translate(arabic)},
               {"card_number": number[:-1] + number[-1].translate(fullwidth)}]
    outcomes = {}
    for change in changes:
        key = ascii(change)
        try:
            buyer("MakePurchase", **{**CARD, **change})
            outcomes[key] = "ok: bought"
        except ApiError as error:
            card = error.code == "conflict" and "card" in error.message.lower()
            outcomes[key] = "card rejected" if card else f"{error.code}: {error.message}"
    assert outcomes == {ascii(change): "card rejected" for change in changes}
    assert (buyer("DisplayCart"), buyer("GetBuyerPurchases"), units(buyer, item_id)) == before


# -- money is exact ------------------------------------------------------------------

def test_money_is_exact_past_two_to_the_53_cents(market, seller, buyer):
    """Finding: a cart worth more than 2**53 cents showed and recorded a float total
    that was off by some cents."""
    prices = {listing(seller, price=999999.99, quantity=999999): Decimal("999999.99")
              for _ in range(100)}
    prices[listing(seller, price=0.01, quantity=1)] = Decimal("0.01")
    quantities = {item_id: 999999 if price > 1 else 1 for item_id, price in prices.items()}
    for item_id, quantity in quantities.items():
        buyer("AddItemToCart", item_id=item_id, quantity=quantity)
    expected = sum(prices[i] * quantities[i] for i in prices)
    assert expected * 100 > 2 ** 53 and expected == Decimal("99999899000001.01")

    def check(lines: list[dict], total) -> None:
        assert sorted(line["item_id"] for line in lines) == sorted(prices)
        for line in lines:
            assert exact(line["price"]) == prices[line["item_id"]]
            assert line["quantity"] == quantities[line["item_id"]]
            assert exact(line["line_total"]) == prices[line["item_id"]] * line["quantity"]
        assert exact(total) == expected

    address = market.buyer_server.address
    cart = raw_call(address, "DisplayCart", buyer.session)["result"]["cart"]
    check(cart["lines"], cart["total"])
    reply = raw_call(address, "MakePurchase", buyer.session, CARD)
    assert reply["ok"], reply
    purchase = reply["result"]["purchase"]
    check(purchase["lines"], purchase["total"])
    history = raw_call(address, "GetBuyerPurchases", buyer.session)["result"]["purchases"]
    [record] = [p for p in history if p["purchase_id"] == purchase["purchase_id"]]
    check(record["lines"], record["total"])


# -- no internal addresses ------------------------------------------------------------

def test_unavailable_names_no_internal_address(fresh_market, unique):
    """Finding: `unavailable` replies named the database's host:port."""
    buyer = fresh_market.buyer()
    buyer.register(unique("buyer"))
    product, customer = fresh_market.product_db.address, fresh_market.customer_db.address
    fresh_market.product_db.stop()
    calls = [("GetItem", {"item_id": 1}), ("SearchItemsForSale", {"category": 1})]
    for op, args in calls:
        error = failure(buyer, op, **args)
        assert error.code == "unavailable", (op, error.code)
        assert str(product[1]) not in error.message, (op, error.message)
    fresh_market.customer_db.stop()
    error = failure(buyer, "DisplayCart")
    assert error.code == "unavailable"
    assert str(customer[1]) not in error.message, error.message
