"""market/database/service.py: writing() and deadlines; the secret (market/net/secret.py's
Handshake) as a database uses it."""
from __future__ import annotations

import time

import pytest
from helpers.inprocess import NoData, reply_to

from market.database.service import Database
from market.net.secret import Handshake
from market.net.secret import proof as auth_proof
from market.net.service import Op, Peer, Request
from protocol import ApiError, Int

# -- Database: writing() and deadlines ------------------------------------------

class Tiny(Database):
    name = "tiny db"
    kind = "tiny_db"

    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.ops["Set"] = Op(self.set, {"value": Int()}, needs_session=False)

    def make_data(self, publish) -> NoData:
        return NoData()

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
    assert not db.lock.locked()


def test_writing_holds_the_lock_for_a_request_in_time():
    db = Tiny()
    with db.writing(Request("Set", None, deadline=time.time() + 60)):
        assert db.lock.locked()
    with db.writing(Request("Set", None)):  # no deadline at all
        assert db.lock.locked()
    assert not db.lock.locked()


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
    db.handshake = Handshake(b"s" * 32)
    peer = Peer()
    assert reply_to(db, b'{"op":"Set","args":{"value":1}}', peer)["error"]["code"] == "forbidden"
    challenge = reply_to(db, b'{"op":"Hello"}', peer)["result"]["challenge"]
    wrong = auth_proof(b"x" * 32, bytes.fromhex(challenge))
    answer = reply_to(db, b'{"op":"Authenticate","args":{"proof":"%s"}}' % wrong.encode(), peer)
    assert answer["error"]["code"] == "forbidden"
    challenge = reply_to(db, b'{"op":"Hello"}', peer)["result"]["challenge"]
    proof = auth_proof(db.handshake.secret, bytes.fromhex(challenge))
    line = b'{"op":"Authenticate","args":{"proof":"%s"}}' % proof.encode()
    assert reply_to(db, line, peer)["ok"]
    assert reply_to(db, b'{"op":"Set","args":{"value":1}}', peer)["result"] == {"value": 1}
    assert reply_to(db, b'{"op":"Set","args":{"value":2}}', Peer())["error"]["code"] == "forbidden"


def test_a_proof_is_spent_with_its_challenge():
    db = Tiny()
    db.handshake = Handshake(b"s" * 32)
    peer = Peer()
    challenge = reply_to(db, b'{"op":"Hello"}', peer)["result"]["challenge"]
    line = b'{"op":"Authenticate","args":{"proof":"%s"}}' % auth_proof(
        db.handshake.secret, bytes.fromhex(challenge)).encode()
    assert reply_to(db, line, peer)["ok"]
    assert reply_to(db, line, peer)["error"]["code"] == "forbidden"  # replayed
    assert reply_to(db, line, Peer())["error"]["code"] == "forbidden"  # another connection
