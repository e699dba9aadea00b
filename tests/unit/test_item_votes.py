"""market.product.votes: a vote key counts once, or is refused and never counts; a buyer's
latest attempt on an item decides, and the verdicts kept are one per buyer and item."""
from __future__ import annotations

from market.keys import vote_key
from market.product.catalog import Item
from market.product.votes import ItemVotes, Verdict

FIRST, SECOND = vote_key(7, 1, 0), vote_key(7, 1, 1)  # buyer 7's two attempts on item 1


def item() -> Item:
    return Item(1, "desk", 0, [], "new", 100, 1, 1)


def thumbs(entry: Item) -> tuple[int, int]:
    return entry.thumbs_up, entry.thumbs_down


def test_a_key_counts_once():
    votes, desk = ItemVotes(), item()
    votes.record(FIRST, desk, "up")
    votes.record(FIRST, desk, "up")
    assert thumbs(desk) == (1, 0) and votes.state(FIRST) is Verdict.COMMITTED
    votes.record(vote_key(8, 1, 0), desk, "down")  # another buyer
    assert thumbs(desk) == (1, 1)


def test_refusing_leaves_a_counted_key_counted():
    votes, desk = ItemVotes(), item()
    votes.record(FIRST, desk, "down")
    votes.cancel([FIRST])
    assert thumbs(desk) == (0, 1) and votes.state(FIRST) is Verdict.COMMITTED


def test_a_vote_after_its_refusal_counts_nothing():
    votes, desk = ItemVotes(), item()
    votes.cancel([FIRST])  # the verdict overtook the vote
    votes.record(FIRST, desk, "up")
    assert votes.state(FIRST) is Verdict.CANCELLED and thumbs(desk) == (0, 0)


def test_the_next_attempt_after_a_refusal_counts_and_the_refused_one_stays_refused():
    votes, desk = ItemVotes(), item()
    votes.cancel([FIRST])
    votes.record(SECOND, desk, "up")
    assert votes.state(SECOND) is Verdict.COMMITTED and thumbs(desk) == (1, 0)
    votes.record(FIRST, desk, "up")  # a late first attempt
    assert votes.state(FIRST) is Verdict.CANCELLED and thumbs(desk) == (1, 0)
    assert len(votes) == 1  # one verdict per buyer and item, whatever the attempts


def test_an_unknown_key_has_no_state():
    assert ItemVotes().state(FIRST) is None and ItemVotes().state("format-1:1:2") is None


def test_verdicts_are_kept_for_good_and_grow_with_the_voters_not_with_time():
    """A counted key's verdict must outlive any outage of the customer database (it asks
    for it to count the seller's thumb), and a cancelled one any late CountVote: both are
    part of the data, one per buyer and item."""
    votes, desk = ItemVotes(), item()
    for buyer_id in range(100):
        votes.cancel([vote_key(buyer_id, 1, 0)])
        votes.record(vote_key(buyer_id, 1, 1), desk, "up")
    assert len(votes) == 100 and thumbs(desk) == (100, 0)


def test_keys_of_the_older_shape_keep_their_verdicts():
    votes, desk = ItemVotes(), item()
    votes.record("format-1:2:1", desk, "up")
    votes.cancel(["a" * 32])
    assert votes.state("format-1:2:1") is Verdict.COMMITTED
    assert votes.state("a" * 32) is Verdict.CANCELLED


def test_dump_and_restore_agree():
    votes, desk = ItemVotes(), item()
    votes.record(FIRST, desk, "up")
    votes.cancel([vote_key(8, 1, 0), "b" * 32])
    again = ItemVotes()
    again.restore(votes.dump())
    assert again.dump() == votes.dump()
    assert again.state(vote_key(8, 1, 0)) is Verdict.CANCELLED
    assert again.state("b" * 32) is Verdict.CANCELLED and again.state(FIRST) is Verdict.COMMITTED
