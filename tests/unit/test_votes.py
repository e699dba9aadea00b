"""market/votes.py: a buyer's vote per item (counted, revoked by its key) and sellers' thumbs."""
from __future__ import annotations

import json

import pytest

import customer_db
from market.votes import Thumb, Vote, Votes, VoteState
from protocol import ApiError

from . import keyed

SALT, HASH = "00" * 16, "11" * 32


def conflict(call, *args, **kwargs) -> bool:
    with pytest.raises(ApiError) as failure:
        call(*args, **kwargs)
    return failure.value.code == "conflict"


def test_a_vote_counts_once_for_its_seller():
    votes = Votes()
    votes.check_new(1, 10)
    votes.record(Vote(1, 10, 7, Thumb.UP, "k1"))
    votes.record(Vote(2, 10, 7, Thumb.DOWN, "k2"))
    votes.record(Vote(1, 11, 8, Thumb.UP, "k3"))
    assert conflict(votes.check_new, 1, 10)
    votes.check_new(1, 12)
    votes.check_new(3, 10)
    assert (votes.thumbs(7).up, votes.thumbs(7).down, votes.thumbs(8).up) == (1, 1, 1)
    assert (votes.thumbs(9).up, votes.thumbs(9).down) == (0, 0)


def test_only_the_attempts_own_key_revokes_it_and_then_the_buyer_may_vote_again():
    votes = Votes()
    votes.record(Vote(1, 10, 7, Thumb.UP, "k1"))
    assert not votes.revocable(1, 10, "other") and not votes.revocable(2, 10, "k1")
    assert votes.revocable(1, 10, "k1")
    votes.revoke(1, 10)
    assert votes.thumbs(7).up == 0
    assert not votes.revocable(1, 10, "k1")  # a second revoke changes nothing
    votes.check_new(1, 10)
    votes.record(Vote(1, 10, 7, Thumb.DOWN, "k2"))
    assert not votes.revocable(1, 10, "k1")  # the old attempt's key no longer names it
    assert (votes.thumbs(7).up, votes.thumbs(7).down) == (0, 1)


def test_a_snapshot_keeps_states_and_thumbs():
    votes = Votes()
    votes.record(Vote(1, 10, 7, Thumb.UP, "k1"))
    votes.record(Vote(2, 10, 7, Thumb.UP, "k2"))
    votes.revoke(2, 10)
    again = Votes()
    again.restore(json.loads(json.dumps(votes.dump())))
    assert again.dump() == votes.dump()
    assert [raw["state"] for raw in again.dump()] == [VoteState.COUNTED, VoteState.REVOKED]
    assert (again.thumbs(7).up, again.thumbs(7).down) == (1, 0)
    assert again.revocable(1, 10, "k1") and not again.revocable(2, 10, "k2")


def test_through_the_database_only_a_buyer_who_bought_may_vote(tmp_path):
    db = customer_db.CustomerDB()
    db.open_data_dir(str(tmp_path))
    for role, name in (("buyer", "ann"), ("seller", "sam")):
        db.dispatch({"op": "CreateAccount", "args": {"role": role, "username": name,
                                                      "salt": SALT, "hash": HASH, "cost": 10,
                                                      **keyed()}})
    token, seller = (db.dispatch({"op": "Login", "args": {"role": role, "username": name,
                                                          "hash": HASH}})["session"]
                     for role, name in (("buyer", "ann"), ("seller", "sam")))

    def call(op: str, **args):
        return db.dispatch({"op": op, "args": args, "session": token})

    def rating(database=db) -> tuple:
        reply = database.dispatch({"op": "GetSellerRating", "args": {"role": "seller"},
                                   "session": seller})
        return reply["thumbs_up"], reply["thumbs_down"], reply["items_sold"]

    assert conflict(call, "RecordVote", item_id=5, vote="up", key="k" * 16)
    call("AddToCart", item_id=5, quantity=1, available=1, **keyed())
    call("StartPurchase", purchase_id="p", card_problem="")
    db.dispatch({"op": "CommitPurchase", "args": {"purchase_id": "p", "card_last4": "1111",
        "lines": [{"item_id": 5, "name": "x", "quantity": 1, "price": 100, "seller_id": 1}]}})
    assert call("RecordVote", item_id=5, vote="up", key="a" * 16) == {"seller_id": 1,
                                                                       "buyer_id": 1}
    assert conflict(call, "RecordVote", item_id=5, vote="down", key="b" * 16)
    revoke = {"op": "RevokeVote", "args": {"buyer_id": 1, "item_id": 5, "key": "a" * 16}}
    assert db.dispatch(revoke) == {} and db.dispatch(revoke) == {}
    call("RecordVote", item_id=5, vote="down", key="c" * 16)
    assert rating() == (0, 1, 1)

    again = customer_db.CustomerDB()
    again.open_data_dir(str(tmp_path))
    assert again.dump() == db.dump() and rating(again) == (0, 1, 1)
