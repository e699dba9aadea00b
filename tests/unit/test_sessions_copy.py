"""market.customer.copy.SessionsCopy: the sessions a frontend answers the checks of itself,
each for the time the customer database allowed, never one it was told has ended. (The
ends travel on the change feed, like any change: tests/unit/test_feed.py.)"""
from __future__ import annotations

import time

from market.customer.copy import SessionsCopy


def test_a_session_is_answered_for_the_time_allowed_counted_from_the_check():
    sessions = SessionsCopy()
    now = time.monotonic()
    sessions.keep("t", 7, 5.0, now, sessions.generation())
    assert sessions.lookup("t") == 7
    sessions.keep("u", 8, 5.0, now - 6.0, sessions.generation())  # checked 6 s ago
    assert sessions.lookup("u") is None
    assert sessions.lookup(None) is None


def test_no_answer_older_than_an_end_is_kept():
    sessions = SessionsCopy()
    generation = sessions.generation()
    sessions.end("t")  # told while the CheckSession was on its way
    sessions.keep("t", 7, 5.0, time.monotonic(), generation)
    assert sessions.lookup("t") is None
    sessions.keep("t", 7, 5.0, time.monotonic(), sessions.generation())
    sessions.end("t")
    assert sessions.lookup("t") is None


def test_nothing_is_kept_without_time_allowed_and_a_clear_forgets_all():
    sessions = SessionsCopy()
    sessions.keep("t", 7, 0.0, time.monotonic(), sessions.generation())
    assert sessions.lookup("t") is None
    sessions.keep("t", 7, 5.0, time.monotonic(), sessions.generation())
    generation = sessions.generation()
    sessions.clear()  # a new snapshot: ends may have been missed
    assert sessions.lookup("t") is None
    sessions.keep("u", 8, 5.0, time.monotonic(), generation)
    assert sessions.lookup("u") is None


def test_entries_past_their_time_are_pruned():
    sessions = SessionsCopy()
    sessions.keep("old", 7, 0.01, time.monotonic(), sessions.generation())
    time.sleep(0.02)
    sessions.prune()
    assert sessions._entries == {}
