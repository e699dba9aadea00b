"""ProductDB in process: every record kind replays to the state it made live."""
from __future__ import annotations

import pytest
from helpers.inprocess import ask, call, keyed

from product_db import ProductDB


def every_change(db: ProductDB) -> None:
    """At least one record of each kind, and some changes that change nothing."""
    for n in range(1, 7):
        call(db, "RegisterItem", seller_id=1 + n % 2, name=f"i{n}", category=n % 3,
             keywords=["Desk", f"k{n}"], condition="new", price=100 * n, quantity=10,
             **keyed())
    call(db, "ChangePrice", seller_id=2, item_id=1, price=999, **keyed())
    call(db, "RemoveUnits", seller_id=1, item_id=2, quantity=3, **keyed())
    for purchase_id in ("held", "sold", "released"):
        call(db, "ReserveUnits", purchase_id=purchase_id,
             lines=[{"item_id": 3, "quantity": 2}, {"item_id": 4, "quantity": 1},
                    {"item_id": 3, "quantity": 1}])
    call(db, "SettleReservations", committed=["sold", "nothing"],
         cancelled=["released", "early"])
    call(db, "SettleReservations", committed=["sold"], cancelled=["released"])  # no change
    call(db, "CountVote", item_id=5, vote="up", key="counted")
    call(db, "CountVote", item_id=5, vote="up", key="counted")  # counted once
    assert call(db, "ResolveVotes", keys=["counted", "refused"]) == {
        "committed": ["counted"], "cancelled": ["refused"]}
    assert call(db, "CountVote", item_id=6, vote="down", key="refused") == {
        "committed": False}


def test_the_changes_show_live():
    db = ProductDB()
    every_change(db)
    item = {i: call(db, "GetItem", item_id=i)["item"] for i in range(1, 7)}
    assert item[1]["price"] == 9.99 and item[2]["quantity"] == 7
    # three reservations took 3 and 1 units each; the released one gave them back
    assert item[3]["quantity"] == 10 - 3 * 3 + 3 and item[4]["quantity"] == 10 - 3 + 1
    assert (item[5]["thumbs_up"], item[6]["thumbs_down"]) == (1, 0)
    assert call(db, "HeldReservations", older_than=0, limit=10) == {"purchase_ids": ["held"]}
    assert db.data.stats() == {"items": 6, "pending_purchases": 1}
    assert call(db, "GetItems", item_ids=[1, 99]) == {
        "items": [{"item_id": 1, "name": "i1", "price_cents": 999, "quantity": 10}]}


def test_a_reservation_answers_the_same_when_asked_again():
    db = ProductDB()
    every_change(db)
    lines = [{"item_id": 3, "quantity": 9}]  # the first asking's lines count, not these
    again = call(db, "ReserveUnits", purchase_id="sold", lines=lines)
    assert again["lines"] == [
        {"item_id": 3, "name": "i3", "quantity": 3, "price": 300, "seller_id": 2},
        {"item_id": 4, "name": "i4", "quantity": 1, "price": 400, "seller_id": 1}]
    for cancelled in ("released", "early"):
        reply = ask(db, "ReserveUnits", purchase_id=cancelled, lines=lines)
        assert reply["error"]["code"] == "conflict"


@pytest.mark.parametrize("snapshot_every", [1000, 7])
def test_journal_and_snapshots_replay_to_the_same_state(tmp_path, snapshot_every):
    db = ProductDB()
    db.open_data_dir(str(tmp_path))
    db.storage.journal.snapshot_every = snapshot_every
    every_change(db)
    again = ProductDB()
    again.open_data_dir(str(tmp_path))
    assert again.data.dump() == db.data.dump()
    for i in range(1, 7):
        assert call(again, "GetItem", item_id=i) == call(db, "GetItem", item_id=i)
    assert call(again, "Search", category=0, keywords=["desk"], limit=10) == \
        call(db, "Search", category=0, keywords=["desk"], limit=10)
    assert call(again, "RegisterItem", seller_id=1, name="next", category=0, keywords=[],
                condition="used", price=1, quantity=1, **keyed()) == {"item_id": 7}
