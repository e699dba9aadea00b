"""market/database.py: Recent's bounded bookkeeping; writing() and deadlines; the secret."""
from __future__ import annotations

import time
import types

import pytest
from helpers.inprocess import reply_to

from market.database import service as database
from market.database.service import Database, Recent
from market.net.secret import proof as auth_proof
from market.net.service import Op, Peer, Request
from protocol import ApiError, Int


@pytest.fixture
def clock(monkeypatch):
    """A fake ``time.monotonic`` for market.database.service only; advance with ``clock.now += s``."""
    fake = types.SimpleNamespace(now=1000.0)
    fake.monotonic = lambda: fake.now
    monkeypatch.setattr(database, "time", fake)
    return fake


# -- Recent -------------------------------------------------------------------------

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


# -- Database: writing() and deadlines ------------------------------------------

class Tiny(Database):
    name = "tiny db"
    kind = "tiny_db"

    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.ops["Set"] = Op(self.set, {"value": Int()}, needs_session=False)

    def set(self, request: Request, value: int) -> dict:
        with self.writing(request):
            self.value = value
        return {"value": value}


def test_writing_refuses_a_request_past_its_deadline_and_releases_the_lock():
    db = Tiny()
    late = Request("Set", None, deadline=time.time() - 1)
    with pytest.raises(ApiError) as info:
        with db.writing(late):
            db.value = 99
    assert info.value.code == "unavailable" and db.value == 0
    assert not db._lock.locked()


def test_writing_holds_the_lock_for_a_request_in_time():
    db = Tiny()
    with db.writing(Request("Set", None, deadline=time.time() + 60)):
        assert db._lock.locked()
    with db.writing(Request("Set", None)):  # no deadline at all
        assert db._lock.locked()
    assert not db._lock.locked()


def test_a_request_arriving_after_its_deadline_changes_nothing():
    db = Tiny()
    late = b'{"op":"Set","args":{"value":5},"deadline":%.3f}' % (time.time() - 1)
    assert reply_to(db, late)["error"]["code"] == "unavailable"
    in_time = b'{"op":"Set","args":{"value":6},"deadline":%.3f}' % (time.time() + 60)
    assert reply_to(db, in_time)["result"] == {"value": 6}
    assert db.value == 6


@pytest.mark.parametrize("deadline", [b"true", b'"1"', b"-1", b"1e13", b"[1]"])
def test_a_malformed_deadline_is_bad_request(deadline):
    db = Tiny()
    answer = reply_to(db, b'{"op":"Set","args":{"value":5},"deadline":' + deadline + b"}")
    assert answer["error"]["code"] == "bad_request" and db.value == 0


# -- Database: the deployment secret ------------------------------------------------

def test_with_a_secret_only_hello_and_authenticate_are_open_until_proven():
    db = Tiny()
    db.secret = b"s" * 32
    peer = Peer()
    assert reply_to(db, b'{"op":"Set","args":{"value":1}}', peer)["error"]["code"] == "forbidden"
    challenge = reply_to(db, b'{"op":"Hello"}', peer)["result"]["challenge"]
    wrong = auth_proof(b"x" * 32, bytes.fromhex(challenge))
    answer = reply_to(db, b'{"op":"Authenticate","args":{"proof":"%s"}}' % wrong.encode(), peer)
    assert answer["error"]["code"] == "forbidden"
    challenge = reply_to(db, b'{"op":"Hello"}', peer)["result"]["challenge"]
    proof = auth_proof(db.secret, bytes.fromhex(challenge))
    line = b'{"op":"Authenticate","args":{"proof":"%s"}}' % proof.encode()
    assert reply_to(db, line, peer)["ok"]
    assert reply_to(db, b'{"op":"Set","args":{"value":1}}', peer)["result"] == {"value": 1}
    assert reply_to(db, b'{"op":"Set","args":{"value":2}}', Peer())["error"]["code"] == "forbidden"


def test_a_proof_is_spent_with_its_challenge():
    db = Tiny()
    db.secret = b"s" * 32
    peer = Peer()
    challenge = reply_to(db, b'{"op":"Hello"}', peer)["result"]["challenge"]
    line = b'{"op":"Authenticate","args":{"proof":"%s"}}' % auth_proof(
        db.secret, bytes.fromhex(challenge)).encode()
    assert reply_to(db, line, peer)["ok"]
    assert reply_to(db, line, peer)["error"]["code"] == "forbidden"  # replayed
    assert reply_to(db, line, Peer())["error"]["code"] == "forbidden"  # another connection
