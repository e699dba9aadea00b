"""market/recent.py: keys remembered for a while, bounded by the rate of additions."""
from __future__ import annotations

import time
import types

import pytest

from market import recent as recent_module
from market.recent import Recent


@pytest.fixture
def clock(monkeypatch):
    """A fake ``time.monotonic`` for market.recent only; advance with ``clock.now += s``."""
    fake = types.SimpleNamespace(now=1000.0)
    fake.monotonic = lambda: fake.now
    monkeypatch.setattr(recent_module, "time", fake)
    return fake


def test_recent_get_contains_and_default():
    recent = Recent(ttl=60)
    recent.put("a", {"v": 1})
    recent.put("b")
    assert recent.get("a") == {"v": 1} and recent.get("b") is True
    assert recent.get("zz") is None and recent.get("zz", "dflt") == "dflt"
    assert "a" in recent and "zz" not in recent
    assert len(recent) == 2


def test_recent_put_drops_entries_older_than_ttl(clock):
    recent = Recent(ttl=10)
    recent.put("old")
    clock.now += 5
    recent.put("mid")
    clock.now += 10.5  # "old" is 15.5 s old, "mid" 10.5 s
    recent.put("new")
    assert "old" not in recent and "mid" not in recent and "new" in recent
    assert recent.get("old", "gone") == "gone"
    assert recent.items() == [("new", True)]


def test_recent_keeps_an_entry_exactly_ttl_old(clock):
    recent = Recent(ttl=10)
    recent.put("a")
    clock.now += 10
    recent.put("b")
    assert "a" in recent and len(recent) == 2


def test_recent_put_again_renews_the_key(clock):
    recent = Recent(ttl=10)
    recent.put("a", 1)
    clock.now += 8
    recent.put("a", 2)  # renewed: now added at 8
    clock.now += 8
    recent.put("b")
    assert recent.get("a") == 2 and len(recent) == 2


def test_recent_length_follows_the_rate_not_the_age(clock):
    recent = Recent(ttl=10)
    for i in range(1000):
        recent.put(str(i))
        clock.now += 1
    assert len(recent) == 11  # the keys added in the last 10 s, plus the newest
    assert "989" in recent and "988" not in recent


def test_recent_with_the_real_clock_and_a_tiny_ttl():
    recent = Recent(ttl=0.01)
    recent.put("a")
    time.sleep(0.02)
    recent.put("b")
    assert "a" not in recent and len(recent) == 1
