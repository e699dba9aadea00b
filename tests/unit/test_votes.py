"""market/votes.py: a buyer's vote per item (recorded, then counted or dropped by the product
database's verdict on its key) and sellers' thumbs."""
from __future__ import annotations

import json

import pytest
from helpers.inprocess import dispatch, keyed, signed_up

import customer_db
from market.customer.votes import Thumb, Vote, Votes, VoteState
from protocol import ApiError


def conflict(call, *args, **kwargs) -> bool:
    with pytest.raises(ApiError) as failure:
        call(*args, **kwargs)
    return failure.value.code == "conflict"


def thumbs(votes: Votes, seller_id: int) -> tuple[int, int]:
    return votes.thumbs(seller_id).up, votes.thumbs(seller_id).down


def test_a_recorded_vote_counts_for_its_seller_only_once_settled_counted():
    votes = Votes()
    votes.check_new(1, 10)
    votes.record(Vote(1, 10, 7, Thumb.UP, "k1"))
    votes.record(Vote(2, 10, 7, Thumb.DOWN, "k2"))
    votes.record(Vote(1, 11, 8, Thumb.UP, "k3"))
    assert thumbs(votes, 7) == (0, 0) and votes.recorded_count() == 3
    assert conflict(votes.check_new, 1, 10)  # recorded: still being counted
    votes.settle(["k1", "k2", "k3"], [])
    votes.settle(["k1"], [])  # a second verdict changes nothing
    assert conflict(votes.check_new, 1, 10)  # counted
    votes.check_new(1, 12)
    votes.check_new(3, 10)
    assert thumbs(votes, 7) == (1, 1) and thumbs(votes, 8) == (1, 0)
    assert thumbs(votes, 9) == (0, 0) and votes.recorded_count() == 0
    assert votes.state(1, 10, "k1") is VoteState.COMMITTED


def test_a_refused_vote_is_dropped_and_the_buyer_may_vote_again():
    votes = Votes()
    votes.record(Vote(1, 10, 7, Thumb.UP, "k1"))
    assert votes.settling(["k1", "other"]) == ["k1"]
    votes.settle([], ["k1"])
    assert votes.state(1, 10, "k1") is None and votes.settling(["k1"]) == []
    votes.settle(["k1"], [])  # a late, contrary verdict finds nothing to count
    votes.check_new(1, 10)
    votes.record(Vote(1, 10, 7, Thumb.DOWN, "k2"))
    votes.settle(["k2"], [])
    assert votes.state(1, 10, "k1") is None  # the old key no longer names the vote
    assert thumbs(votes, 7) == (0, 1)


def test_recorded_votes_are_listed_oldest_first_once_old_enough():
    votes = Votes()
    for n in range(3):
        votes.record(Vote(1, n, 7, Thumb.UP, f"k{n}"))
    assert votes.recorded_longer_than(60, 10) == []
    assert votes.recorded_longer_than(0, 10) == ["k0", "k1", "k2"]
    assert votes.recorded_longer_than(0, 2) == ["k0", "k1"]
    votes.settle(["k0"], ["k1"])
    assert votes.recorded_longer_than(0, 10) == ["k2"]


def test_a_snapshot_keeps_states_and_thumbs():
    votes = Votes()
    votes.record(Vote(1, 10, 7, Thumb.UP, "k1"))
    votes.record(Vote(2, 10, 7, Thumb.UP, "k2"))
    votes.record(Vote(3, 10, 7, Thumb.UP, "k3"))
    votes.settle(["k1"], ["k3"])
    again = Votes()
    again.restore(json.loads(json.dumps(votes.dump())))
    assert again.dump() == votes.dump()
    assert [raw.get("state") for raw in again.dump()] == [VoteState.COMMITTED,
                                                          VoteState.RECORDED, None]
    assert again.dump()[-1] == {"buyer_id": 3, "item_id": 10, "refusals": 1}
    assert thumbs(again, 7) == (1, 0) and again.recorded_longer_than(0, 10) == ["k2"]
    assert again.next_key(3, 10) == "3.10.1" and again.next_key(1, 10) == "1.10.0"


def test_through_the_database_a_vote_is_recorded_once_per_key_and_settled(tmp_path):
    db = customer_db.CustomerDB()
    db.open_data_dir(str(tmp_path))
    token, seller = signed_up(db, "buyer", "ann"), signed_up(db, "seller", "sam")

    def call(op: str, **args):
        return dispatch(db, op, token, **args)

    def rating(database=db) -> tuple:
        reply = dispatch(database, "GetSellerRating", seller, role="seller")
        return reply["thumbs_up"], reply["thumbs_down"], reply["items_sold"]

    up, down = {"key": "u" * 16, "fingerprint": "1" * 32}, {"key": "d" * 16,
                                                            "fingerprint": "2" * 32}
    assert conflict(call, "RecordVote", item_id=5, vote="up", **up)  # not bought
    call("AddToCart", item_id=5, quantity=1, available=1, **keyed())
    purchase_id = call("StartPurchase", card_problem="", **keyed())["purchase_id"]
    db.dispatch({"op": "CommitPurchase", "args": {"purchase_id": purchase_id,
        "card_last4": "1111",
        "lines": [{"item_id": 5, "name": "x", "quantity": 1, "price": 100, "seller_id": 1}]}})
    assert conflict(call, "RecordVote", item_id=5, vote="up", **up)  # the first outcome
    fresh = {"key": "f" * 16, "fingerprint": "1" * 32}
    first = call("RecordVote", item_id=5, vote="up", **fresh)
    assert first["state"] == "recorded" and rating() == (0, 0, 1)
    assert call("RecordVote", item_id=5, vote="up", **fresh) == first  # a resend
    assert conflict(call, "RecordVote", item_id=5, vote="down", **down)  # being counted
    assert db.dispatch({"op": "RecordedVotes", "args": {"older_than": 0, "limit": 10}}) \
        == {"keys": [first["vote_key"]]}
    settle = {"op": "SettleVotes", "args": {"committed": [], "cancelled": [first["vote_key"]]}}
    assert db.dispatch(settle) == {} and db.dispatch(settle) == {}
    assert call("RecordVote", item_id=5, vote="up", **fresh)["state"] is None  # refused
    other = {"key": "o" * 16, "fingerprint": "2" * 32}
    second = call("RecordVote", item_id=5, vote="down", **other)
    db.dispatch({"op": "SettleVotes", "args": {"committed": [second["vote_key"]],
                                               "cancelled": []}})
    assert call("RecordVote", item_id=5, vote="down", **other)["state"] == "counted"
    assert rating() == (0, 1, 1)

    again = customer_db.CustomerDB()
    again.open_data_dir(str(tmp_path))
    assert again.data.dump() == db.data.dump() and rating(again) == (0, 1, 1)
