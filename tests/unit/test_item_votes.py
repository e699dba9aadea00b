"""market.product.votes: a vote key counts once, or is refused and never counts."""
from __future__ import annotations

from market.product.catalog import Item
from market.product.votes import ItemVotes, VoteState


def item() -> Item:
    return Item(1, "desk", 0, [], "new", 100, 1, 1)


def thumbs(entry: Item) -> tuple[int, int]:
    return entry.thumbs_up, entry.thumbs_down


def test_a_key_counts_once():
    votes, desk = ItemVotes(), item()
    votes.record("k", desk, "up")
    votes.record("k", desk, "up")
    assert thumbs(desk) == (1, 0) and votes.state("k") is VoteState.COUNTED
    votes.record("other", desk, "down")
    assert thumbs(desk) == (1, 1)


def test_refusing_leaves_a_counted_key_counted():
    votes, desk = ItemVotes(), item()
    votes.record("k", desk, "down")
    votes.refuse(["k"])
    assert thumbs(desk) == (0, 1) and votes.state("k") is VoteState.COUNTED


def test_a_vote_after_its_refusal_counts_nothing():
    votes, desk = ItemVotes(), item()
    votes.refuse(["k"])  # the verdict overtook the vote
    votes.record("k", desk, "up")
    assert votes.state("k") is VoteState.REFUSED and thumbs(desk) == (0, 0)


def test_an_unknown_key_has_no_state():
    assert ItemVotes().state("k") is None


def test_refused_keys_are_forgotten_after_their_time_counted_ones_never():
    """A counted key's verdict must outlive any outage of the customer database (it asks
    for it to count the seller's thumb); a refused one only outlives late RecordVotes."""
    votes, desk = ItemVotes(ttl=-1), item()
    votes.record("counted", desk, "up")
    votes.refuse(["old"])
    votes.refuse(["new"])  # adding one drops those past their time
    assert votes.state("old") is None
    assert votes.state("counted") is VoteState.COUNTED


def test_dump_and_restore_agree():
    votes, desk = ItemVotes(), item()
    votes.record("counted", desk, "up")
    votes.refuse(["refused"])
    again = ItemVotes()
    again.restore(votes.dump())
    assert again.dump() == votes.dump()
    assert again.state("refused") is VoteState.REFUSED
