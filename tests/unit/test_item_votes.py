"""market.item_votes: a vote key counts once, is revoked once, and never comes back."""
from __future__ import annotations

from market.catalog import Item
from market.item_votes import ItemVotes, VoteState


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


def test_revoking_a_counted_vote_takes_it_back_once():
    votes, desk = ItemVotes(), item()
    votes.record("k", desk, "down")
    votes.revoke("k", desk, "down")
    votes.revoke("k", desk, "down")
    assert thumbs(desk) == (0, 0) and votes.state("k") is VoteState.REVOKED


def test_a_vote_after_its_revocation_changes_nothing():
    votes, desk = ItemVotes(), item()
    votes.revoke("k", desk, "up")  # the undo overtook the vote
    assert votes.state("k") is VoteState.REVOKED and thumbs(desk) == (0, 0)
    votes.record("k", desk, "up")
    assert votes.state("k") is VoteState.REVOKED and thumbs(desk) == (0, 0)


def test_an_unknown_key_has_no_state():
    assert ItemVotes().state("k") is None


def test_keys_are_forgotten_after_their_time():
    votes, desk = ItemVotes(ttl=-1), item()
    votes.record("old", desk, "up")
    votes.record("new", desk, "up")  # adding one drops those past their time
    assert votes.state("old") is None


def test_dump_and_restore_agree():
    votes, desk = ItemVotes(), item()
    votes.record("counted", desk, "up")
    votes.record("revoked", desk, "down")
    votes.revoke("revoked", desk, "down")
    again = ItemVotes()
    again.restore(votes.dump())
    assert again.dump() == votes.dump()
    assert again.state("revoked") is VoteState.REVOKED
