"""Session leases (market.replication.leases): what the database grants and waits for, and what a
frontend keeps, without sockets."""
from __future__ import annotations

import threading
import time

from market.replication.leases import Leases, SessionCache


def watching(leases: Leases, holder: str = "h" * 16) -> str:
    """Register ``holder`` as a watcher (its first watch learns the epoch at once)."""
    reply = leases.watch(holder, "", 0, 5.0)
    assert reply["tokens"] == [] and reply["epoch"] == leases.epoch
    return holder


def test_a_lease_goes_only_to_a_watching_holder():
    leases = Leases(1.0)
    assert leases.grant("t", None) == 0.0
    assert leases.grant("t", "h" * 16) == 0.0
    assert leases.grant("t", watching(leases)) == 1.0


def test_revoke_returns_once_the_holder_confirmed():
    leases = Leases(30.0)
    holder = watching(leases)
    leases.grant("t", holder)
    told = {}

    def frontend() -> None:
        told.update(leases.watch(holder, leases.epoch, 0, 5.0))
        leases.watch(holder, leases.epoch, told["upto"], 0.0)  # confirms

    thread = threading.Thread(target=frontend)
    thread.start()
    started = time.monotonic()
    leases.revoke(["t"])
    thread.join()
    assert told["tokens"] == ["t"]
    assert time.monotonic() - started < 5.0  # not the 30 s lease


def test_revoke_waits_out_a_lease_never_confirmed_and_no_longer():
    leases = Leases(0.3)
    leases.grant("t", watching(leases))
    started = time.monotonic()
    leases.revoke(["t"])
    assert 0.25 <= time.monotonic() - started < 2.0


def test_revoke_of_an_unleased_token_returns_at_once():
    leases = Leases(30.0)
    watching(leases)
    started = time.monotonic()
    leases.revoke(["never-leased"])
    assert time.monotonic() - started < 1.0


def test_a_restart_on_kept_sessions_waits_out_the_previous_runs_leases():
    leases = Leases(0.3)
    leases.restarted()
    started = time.monotonic()
    leases.revoke(["kept-from-disk"])
    assert time.monotonic() - started >= 0.25


def test_a_resent_watch_tells_the_unconfirmed_tokens_again():
    leases = Leases(30.0)
    holder = watching(leases)
    leases.grant("t", holder)
    threading.Thread(target=leases.revoke, args=(["t"],), daemon=True).start()
    first = leases.watch(holder, leases.epoch, 0, 5.0)
    again = leases.watch(holder, leases.epoch, 0, 0.0)  # the first reply was lost
    assert first["tokens"] == again["tokens"] == ["t"]
    assert leases.watch(holder, leases.epoch, again["upto"], 0.0)["tokens"] == []


def test_numbers_of_another_run_confirm_nothing():
    leases = Leases(30.0)
    holder = watching(leases)
    leases.grant("t", holder)
    threading.Thread(target=leases.revoke, args=(["t"],), daemon=True).start()
    assert leases.watch(holder, leases.epoch, 0, 5.0)["tokens"] == ["t"]
    assert leases.watch(holder, "0" * 16, 99, 0.0)["tokens"] == ["t"]


def test_the_cache_answers_in_the_first_half_only():
    cache = SessionCache()
    cache.watching = True
    now = time.monotonic()
    cache.keep("t", 7, 10.0, now, cache.generation())
    assert cache.lookup("t") == 7
    cache.keep("u", 8, 10.0, now - 6.0, cache.generation())  # sent 6 s ago: second half
    assert cache.lookup("u") is None
    assert cache.lookup(None) is None


def test_the_cache_keeps_no_answer_older_than_a_drop():
    cache = SessionCache()
    cache.watching = True
    generation = cache.generation()
    cache.drop(["t"])  # told while the CheckSession was on its way
    cache.keep("t", 7, 10.0, time.monotonic(), generation)
    assert cache.lookup("t") is None
    cache.keep("t", 7, 10.0, time.monotonic(), cache.generation())
    cache.drop(["t"])
    assert cache.lookup("t") is None


def test_the_cache_keeps_nothing_while_not_watching():
    cache = SessionCache()
    cache.keep("t", 7, 10.0, time.monotonic(), cache.generation())
    assert cache.lookup("t") is None
    cache.watching = True
    cache.keep("t", 7, 10.0, time.monotonic(), cache.generation())
    cache.forget_all()
    assert cache.lookup("t") is None and not cache.watching
