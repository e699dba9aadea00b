"""market/purchases.py: the purchase state machine through every transition, and the history."""
from __future__ import annotations

import json
import time

import pytest
from helpers.inprocess import dispatch, keyed, signed_up

import customer_db
from market.customer.carts import EMPTY, Cart
from market.customer.purchases import Purchases, PurchaseState, purchase_record
from protocol import ApiError


def line(item_id: int, quantity: int, price: int = 250, seller_id: int = 7) -> dict:
    return {"item_id": item_id, "name": f"item {item_id}", "quantity": quantity,
            "price": price, "seller_id": seller_id}


def code(call, *args) -> str:
    with pytest.raises(ApiError) as failure:
        call(*args)
    return failure.value.code


@pytest.fixture
def purchases() -> Purchases:
    return Purchases()


def test_unknown_then_started(purchases):
    cart = Cart([[4, 2], [5, 1]])
    assert purchases.get("p") is None
    assert purchases.to_start("p", cart, "") == [[4, 2], [5, 1]]
    assert code(purchases.to_start, "p", EMPTY, "") == "conflict"  # nothing to buy
    assert code(purchases.to_start, "p", cart, "expired") == "conflict"  # the card
    purchases.start("p", "tok", 1, [[4, 2], [5, 1]])
    assert purchases.state("p") is PurchaseState.STARTED
    assert purchases.progress("p") == {"purchase_id": "p", "state": "started",
                                       "cart": [[4, 2], [5, 1]]}  # a resend goes on
    assert code(purchases.to_start, "p", cart, "") == "conflict"  # the id was used
    assert purchases.held_items("tok") == {4, 5} and purchases.held_items("other") == set()
    assert purchases.counts() == {"purchases": 0, "pending_purchases": 1}


def test_started_then_committed_once(purchases):
    purchases.start("p", "tok", 1, [[4, 2], [5, 1]])
    assert code(purchases.check_commit, "p", [line(4, 2)]) == "bad_request"  # not its lines
    lines = [line(5, 1, seller_id=8), line(4, 2)]
    purchases.check_commit("p", lines)  # may commit
    committed = purchases.commit(purchase_record("p", lines, "1111"))
    assert committed.state is PurchaseState.COMMITTED and purchases.state("p") is committed.state
    assert purchases.get("p") is committed  # what a resent commit is answered with
    assert code(purchases.check_commit, "p", lines) == "conflict"  # never twice
    assert code(purchases.to_start, "p", Cart([[1, 1]]), "") == "conflict"  # id spent
    assert purchases.progress("p") == {"purchase_id": "p", "state": "committed"}
    assert purchases.bought_by("p", 1) is committed
    assert code(purchases.bought_by, "p", 2) == "not_found"  # another buyer's
    assert purchases.held_items("tok") == set()
    assert committed.record["total"] == 750 and committed.record["card_last4"] == "1111"
    view = json.loads(committed.view)
    assert view["total"] == 7.5 and view["lines"][1]["line_total"] == 5
    assert json.loads(purchases.page(1, 10, None))["items_purchased"] == 3
    assert (purchases.items_sold(7), purchases.items_sold(8)) == (2, 1)
    assert purchases.bought_from(1, 5) == 8 and code(purchases.bought_from, 1, 6) == "conflict"
    assert purchases.counts() == {"purchases": 1, "pending_purchases": 0}
    assert purchases.cancel(["p"]) == [] and purchases.state("p") is PurchaseState.COMMITTED


def test_started_then_cancelled_for_good(purchases):
    purchases.start("p", "tok", 1, [[4, 2]])
    [cancelled] = purchases.cancel(["p"])
    assert cancelled.lines == [[4, 2]] and cancelled.token == "tok"
    assert purchases.state("p") is PurchaseState.CANCELLED
    assert code(purchases.check_commit, "p", [line(4, 2)]) == "conflict"
    assert code(purchases.to_start, "p", Cart([[1, 1]]), "") == "conflict"
    assert code(purchases.progress, "p") == "conflict"  # a resend: not made
    assert code(purchases.bought_by, "p", 1) == "not_found"
    assert purchases.cancel(["p"]) == []  # cancelling again changes nothing
    assert purchases.held_items("tok") == set() and purchases.stale(time.monotonic() + 99, 1) == []
    assert purchases.counts() == {"purchases": 0, "pending_purchases": 0}


def test_unknown_then_cancelled_can_never_commit_or_start(purchases):
    assert purchases.cancel(["late"]) == []
    assert purchases.state("late") is PurchaseState.CANCELLED
    assert code(purchases.check_commit, "late", [line(1, 1)]) == "conflict"
    assert code(purchases.to_start, "late", Cart([[1, 1]]), "") == "conflict"


def test_the_verdict_sells_committed_ids_and_releases_the_rest(purchases):
    purchases.start("sold", "tok", 1, [[1, 1]])
    purchases.commit(purchase_record("sold", [line(1, 1)], "1111"))
    purchases.start("open", "tok", 1, [[2, 1]])
    purchases.cancel(["gone"])
    assert purchases.verdict(["sold", "open", "gone", "never"]) \
        == (["sold"], ["open", "gone", "never"], ["open", "never"])


def test_stale_purchases_are_the_started_ones_older_than_the_timeout(purchases):
    purchases.start("old", "a", 1, [[1, 1]])
    purchases.start("new", "b", 1, [[2, 1]])
    purchases.get("new").since += 10
    now = purchases.get("old").since + 5
    assert purchases.stale(now, timeout=4) == ["old"]
    assert purchases.stale(now + 10, timeout=4) == ["old", "new"]


def test_history_pages_oldest_first(purchases):
    for n in range(5):
        purchases.start(f"p{n}", "tok", 1, [[n + 1, 1]])
        purchases.commit(purchase_record(f"p{n}", [line(n + 1, 1)], "1111"))
    first = json.loads(purchases.page(1, 3, None))
    assert [p["purchase_id"] for p in first["purchases"]] == ["p0", "p1", "p2"]
    rest = json.loads(purchases.page(1, 3, first["next"]))
    assert [p["purchase_id"] for p in rest["purchases"]] == ["p3", "p4"]
    assert rest["next"] is None and rest["items_purchased"] == 5
    assert json.loads(purchases.page(2, 3, None)) == {"purchases": [], "next": None,
                                                       "items_purchased": 0}
    assert code(purchases.page, 2, 3, first["next"]) == "bad_request"  # another buyer's cursor


def test_a_snapshot_keeps_every_state(purchases):
    purchases.start("done", "a", 1, [[1, 2]])
    purchases.commit(purchase_record("done", [line(1, 2)], "1111"))
    purchases.start("open", "a", 1, [[2, 1]], {"scope": "buyer:1", "key": "k" * 16,
                                               "fingerprint": "0" * 32, "at": 1.0})
    purchases.cancel(["gone"])
    again = Purchases()
    again.restore(json.loads(json.dumps(purchases.dump())))
    assert [again.state(p) for p in ("done", "open", "gone", "never")] == [
        PurchaseState.COMMITTED, PurchaseState.STARTED, PurchaseState.CANCELLED, None]
    assert again.page(1, 10, None) == purchases.page(1, 10, None)
    assert again.held_items("a") == {2} and again.bought_from(1, 1) == 7
    assert again.keys_of(["open", "done"]) == purchases.keys_of(["open"]) != []
    assert again.dump() == purchases.dump()


# -- through CustomerDB: carts, and the journal replaying the same transitions ---------------

def test_purchases_move_cart_lines_and_replay_after_a_restart(tmp_path):
    db = customer_db.CustomerDB()
    db.open_data_dir(str(tmp_path))
    token = signed_up(db, "buyer", "ann")

    def call(op: str, **args):
        return dispatch(db, op, token, **args)

    def cart(database=db) -> list:
        return dispatch(database, "GetCart", token)["cart"]

    call("AddToCart", item_id=1, quantity=2, available=5, **keyed())
    call("SaveCart", **keyed())
    first = keyed()
    started = call("StartPurchase", card_problem="", **first)
    assert started["cart"] == [[1, 2]] and started["state"] == "started"
    assert call("StartPurchase", card_problem="", **first) == started  # a resend goes on
    assert cart() == []
    call("AddToCart", item_id=2, quantity=1, available=5, **keyed())
    reason = {"code": "conflict", "message": "Item 1 has 1 left."}
    db.dispatch({"op": "ResolvePurchases", "args": {"purchase_ids": [started["purchase_id"]],
                                                    "reason": reason}})
    assert cart() == [[1, 2], [2, 1]]  # back, before the line added meanwhile
    with pytest.raises(ApiError, match="Item 1 has 1 left"):  # a resend: the reason again
        call("StartPurchase", card_problem="", **first)
    second = keyed()
    p2 = call("StartPurchase", card_problem="", **second)["purchase_id"]
    db.dispatch({"op": "CommitPurchase", "args": {
        "purchase_id": p2, "lines": [line(1, 2), line(2, 1)], "card_last4": "1111"}})
    assert call("StartPurchase", card_problem="", **second) == {"purchase_id": p2,
                                                                "state": "committed"}
    assert json.loads(call("GetPurchase", purchase_id=p2).json)["purchase"]["total"] == 7.5
    assert db.data.carts.saved(1).lines() == []  # what was bought left the saved cart
    call("AddToCart", item_id=3, quantity=1, available=5, **keyed())
    p3 = call("StartPurchase", card_problem="", **keyed())["purchase_id"]
    assert db.data.stats() == {"accounts": 1, "live_sessions": 1, "purchases": 1,
                               "pending_purchases": 1}

    again = customer_db.CustomerDB()
    again.open_data_dir(str(tmp_path))
    assert again.data.dump() == db.data.dump()
    assert [again.data.purchases.state(p) for p in (started["purchase_id"], p2, p3)] == [
        PurchaseState.CANCELLED, PurchaseState.COMMITTED, PurchaseState.STARTED]
    assert again.data.purchases.held_items(token) == {3} and cart(again) == []
