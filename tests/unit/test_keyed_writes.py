"""Database.keyed_write in process: once per key and account, the first outcome to a resend
(even a late one), journaled with its change, forgotten after KEY_TTL."""
from __future__ import annotations

import time

from helpers.inprocess import HASH, SALT, ask, in_thread

import customer_db
from market.config import KEY_TTL
from market.storage.journal import read_saved
from product_db import ProductDB

ITEM = {"seller_id": 1, "name": "lamp", "category": 1, "keywords": [], "condition": "new",
        "price": 100, "quantity": 5}


def keyed(key: str, fingerprint: str = "f" * 32) -> dict:
    return {"key": key, "fingerprint": fingerprint}


def outcome(reply: dict):
    return reply["result"] if reply["ok"] else reply["error"]["code"]


def buyer_of(db: customer_db.CustomerDB, name: str) -> str:
    ask(db, "CreateAccount", role="buyer", username=name, salt=SALT, hash=HASH, cost=10,
        **keyed(f"account-of-{name}-00"))
    return ask(db, "Login", role="buyer", username=name, hash=HASH)["result"]["session"]


def test_a_cart_change_is_made_once_per_key_and_account():
    db = customer_db.CustomerDB()
    ann, bob = buyer_of(db, "ann"), buyer_of(db, "bob")
    ask(db, "AddToCart", ann, item_id=1, quantity=5, available=9, **keyed("add-0000000000001"))
    remove = {"item_id": 1, "quantity": 2, **keyed("remove-0000000001")}
    assert outcome(ask(db, "RemoveFromCart", ann, **remove)) == {"cart": [[1, 3]]}
    assert outcome(ask(db, "RemoveFromCart", ann, **remove)) == {"cart": [[1, 3]]}  # not 1
    assert outcome(ask(db, "RemoveFromCart", ann, item_id=1, quantity=2,
                       **keyed("remove-0000000001", "e" * 32))) == "conflict"
    # Another buyer's key of the same text is its own.
    assert outcome(ask(db, "AddToCart", bob, item_id=1, quantity=1, available=9,
                       **keyed("remove-0000000001"))) == {"cart": [[1, 1]]}


def test_a_final_error_is_the_first_outcome_until_the_key_expires():
    db = customer_db.CustomerDB()
    ann = buyer_of(db, "ann")
    add = {"item_id": 1, "quantity": 2, **keyed("add-0000000000001")}
    assert outcome(ask(db, "AddToCart", ann, available=1, **add)) == "conflict"
    assert outcome(ask(db, "AddToCart", ann, available=5, **add)) == "conflict"  # as first
    db.outcomes.forget_expired(time.time() + KEY_TTL + 1)
    assert outcome(ask(db, "AddToCart", ann, available=5, **add)) == {"cart": [[1, 2]]}


def test_a_late_resend_gets_the_first_outcome_and_a_late_new_key_nothing():
    db = ProductDB()
    past = time.time() - 1
    item_id = outcome(ask(db, "RegisterItem", **ITEM, **keyed("register-00000001")))["item_id"]
    again = ask(db, "RegisterItem", deadline=past, **ITEM, **keyed("register-00000001"))
    assert outcome(again) == {"item_id": item_id}
    assert outcome(ask(db, "RegisterItem", deadline=past, **ITEM,
                       **keyed("register-00000002"))) == "unavailable"
    assert len(db.data.dump()["items"]) == 1


def test_outcomes_are_journaled_with_their_change_and_kept_by_snapshots(tmp_path):
    db = ProductDB()
    db.open_data_dir(str(tmp_path))
    item_id = outcome(ask(db, "RegisterItem", **ITEM, **keyed("register-00000001")))["item_id"]
    remove = {"seller_id": 1, "item_id": item_id, "quantity": 2, **keyed("remove-0000000001")}
    first = outcome(ask(db, "RemoveUnits", **remove))
    assert first["item"]["quantity"] == 3

    replayed = ProductDB()
    replayed.open_data_dir(str(tmp_path))
    assert outcome(ask(replayed, "RemoveUnits", **remove)) == first
    assert outcome(ask(replayed, "GetItem", item_id=item_id))["item"]["quantity"] == 3
    replayed.storage.journal.snapshot_every = 1  # the next change writes a snapshot
    ask(replayed, "ChangePrice", seller_id=1, item_id=item_id, price=250,
        **keyed("price-00000000001"))

    saved = read_saved(str(tmp_path))
    assert (len(saved.state["outcomes"]), saved.records) == (3, [])  # all in the snapshot
    restored = ProductDB()
    restored.open_data_dir(str(tmp_path))
    assert outcome(ask(restored, "RemoveUnits", **remove)) == first
    assert outcome(ask(restored, "ChangePrice", seller_id=1, item_id=item_id, price=250,
                       **keyed("price-00000000001")))["item"]["price"] == 2.5
    assert outcome(ask(restored, "GetItem", item_id=item_id))["item"]["quantity"] == 3


def test_a_final_error_is_journaled_so_a_resend_after_a_restart_gets_it(tmp_path):
    """Review finding: a refusal kept in memory only let a resend after a restart apply."""
    db = customer_db.CustomerDB()
    db.open_data_dir(str(tmp_path))
    ann = buyer_of(db, "ann")
    add = {"item_id": 1, "quantity": 2, **keyed("add-0000000000001")}
    assert outcome(ask(db, "AddToCart", ann, available=1, **add)) == "conflict"

    replayed = customer_db.CustomerDB()
    replayed.open_data_dir(str(tmp_path))
    assert outcome(ask(replayed, "AddToCart", ann, available=5, **add)) == "conflict"
    assert outcome(ask(replayed, "GetCart", ann)) == {"cart": []}


def test_records_written_before_keys_replay_without_outcomes():
    db = ProductDB()
    db.apply({"kind": "item_registered", "item_id": 1, **ITEM})
    db.apply({"kind": "units_removed", "item_id": 1, "quantity": 2})
    assert len(db.outcomes) == 0
    assert outcome(ask(db, "GetItem", item_id=1))["item"]["quantity"] == 3


# -- which replies wait for the frontends' copies ------------------------------------------

def copied_but_never_confirmed(db) -> None:
    """A follower joins ``db``'s feed, confirms its copy (so it holds a 30 s lease), and then
    never confirms a change."""
    db.feed.length = 30.0
    snapshot = ask(db, "Follow", follower="f" * 16, epoch="", seen=0, wait_ms=0)["result"]
    ask(db, "Follow", follower="f" * 16, epoch=snapshot["epoch"], seen=snapshot["upto"],
        wait_ms=0)


def confirm_all(db) -> None:
    """The follower takes the changes queued for it (a follower confirms only what it was
    sent), then confirms them."""
    sent = ask(db, "Follow", follower="f" * 16, epoch=db.feed.epoch, seen=0, wait_ms=0)
    ask(db, "Follow", follower="f" * 16, epoch=db.feed.epoch, seen=sent["result"]["upto"],
        wait_ms=0)


def test_a_write_and_its_resend_wait_for_the_copies_and_a_read_does_not():
    db = ProductDB()
    item_id = outcome(ask(db, "RegisterItem", **ITEM, **keyed("register-00000001")))["item_id"]
    copied_but_never_confirmed(db)
    price = {"seller_id": 1, "item_id": item_id, "price": 250, **keyed("price-00000000001")}
    write = in_thread(ask, db, "ChangePrice", **price)
    write.join(0.3)
    assert write.is_alive()  # its change is not in the copy yet
    # A read and a refused write go at once (not after the 30 s lease), though a change
    # is waiting.
    began = time.monotonic()
    assert outcome(ask(db, "GetItem", item_id=item_id))["item"]["price"] == 2.5
    assert outcome(ask(db, "RemoveUnits", seller_id=1, item_id=item_id, quantity=99,
                       **keyed("remove-0000000001"))) == "conflict"
    assert time.monotonic() - began < 5.0
    resend = in_thread(ask, db, "ChangePrice", **price)
    resend.join(0.3)
    assert resend.is_alive()  # the same outcome, so the same wait
    confirm_all(db)
    write.join(5.0)
    resend.join(5.0)
    assert not write.is_alive() and not resend.is_alive()


def test_a_cart_change_does_not_wait_for_a_rating_change_on_its_way_to_the_copies():
    db = customer_db.CustomerDB()
    ann = buyer_of(db, "ann")
    copied_but_never_confirmed(db)
    seller = in_thread(ask, db, "CreateAccount", role="seller", username="sam", salt=SALT,
                       hash=HASH, cost=10, **keyed("account-of-sam-00"))
    seller.join(0.3)
    assert seller.is_alive()  # a new seller's rating: followed, so it waits
    add = {"item_id": 1, "quantity": 2, "available": 9, **keyed("add-0000000000001")}
    began = time.monotonic()
    assert outcome(ask(db, "AddToCart", ann, **add)) == {"cart": [[1, 2]]}
    assert time.monotonic() - began < 5.0  # not the 30 s lease
    confirm_all(db)
    seller.join(5.0)
    assert not seller.is_alive()
