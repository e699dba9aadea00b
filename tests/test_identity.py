"""One market, one identity; deadlines whatever the clocks say; the internal door.

Over real processes: a frontend serves only a pair of databases that belong to one
market (a fresh database beside an old one is refused, with a WARNING saying what
to do), ids in a fresh market are short, a database whose clock is 30 s off still
works and never applies a write after the frontend gave up on it, and the secret's
door answers any proof with ``forbidden`` or ``bad_request`` and refuses weak secrets.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.identity import MISMATCH, market_of, refused
from helpers.market import ROOT, listing, log_of, stall, start_logged, wait_until
from helpers.wire import Wire

from market.ops.launch import ServiceProcess

MARKET_ID = re.compile(r"^[0-9a-f]{16}$")


def test_a_fresh_market_shares_one_identity_and_hands_out_short_ids(fresh_market, unique):
    seller = fresh_market.seller()
    assert seller.register(unique("sal")) == 1
    assert listing(seller) == 1
    assert listing(seller) == 2
    assert fresh_market.buyer().register(unique("bo")) == 1
    identity = market_of(fresh_market.customer_db)
    assert MARKET_ID.match(identity) and market_of(fresh_market.product_db) == identity


def test_a_fresh_customer_db_beside_an_old_product_db_is_refused(tmp_path, unique, stoppable):
    data = {name: tmp_path / name for name in ("product", "customer", "fresh")}
    market = start_logged(tmp_path, ("--data-dir", str(data["product"])),
                          ("--data-dir", str(data["customer"])))
    stoppable.append(market)
    old = market.seller()
    old.register("alice")
    item_id = listing(old, price=25, quantity=5)
    buyer = market.buyer()  # logged in before: the session was in the lost directory
    buyer.register("bob")
    identity = market_of(market.product_db)

    market.customer_db.stop()
    fresh = ServiceProcess("customer_db.py", "--data-dir", str(data["fresh"]),
                           log=tmp_path / "logs" / "customer_db.py.log")
    market.customer_db = fresh.start(market.customer_db.address[1])
    mallory = market.seller()
    assert wait_until(lambda: refused(mallory), timeout=10)
    assert refused(mallory, "Login", username="alice", password="pw")
    assert wait_until(lambda: refused(buyer, "DisplayCart"), timeout=10)
    assert refused(buyer, "GetItem", item_id=item_id)
    assert refused(buyer, "SearchItemsForSale", category=4)
    warning = [line for line in log_of(tmp_path, "seller_server.py").splitlines()
               if "WARNING" in line and MISMATCH in line]
    assert len(warning) == 1, warning  # once per change of state, however many requests
    assert identity in warning[0] and "no market yet" in warning[0]
    assert "restore" in warning[0] and "fresh data directories" in warning[0]
    assert market_of(market.customer_db) is None  # the refused pair was not claimed

    market.customer_db.stop()  # the lost directory is back: served again, as before
    market.customer_db = ServiceProcess("customer_db.py", "--data-dir", str(data["customer"])
                                        ).start(fresh.address[1])
    again = market.seller()
    assert wait_until(lambda: not refused(again, "Login", username="alice", password="pw"),
                      timeout=10)
    again.login("alice")
    item = again("DisplayItemsForSale")["items"][0]
    assert (item["item_id"], item["price"], item["quantity"]) == (item_id, 25, 5)


def test_an_old_versions_product_data_beside_a_fresh_customer_db_is_refused(tmp_path, stoppable):
    """Finding: with the customer database on a fresh directory beside the product data of
    commit 78b932a, a new seller got id 1 and repriced the old seller's item."""
    shutil.copytree(ROOT / "tests" / "fixtures" / "format-1" / "product", tmp_path / "product")
    market = start_logged(tmp_path, ("--data-dir", str(tmp_path / "product")),
                          ("--data-dir", str(tmp_path / "fresh")))
    stoppable.append(market)
    mallory = market.seller()
    assert wait_until(lambda: refused(mallory), timeout=10)
    assert market_of(market.product_db) is market_of(market.customer_db) is None
    assert "data from an older version" in log_of(tmp_path, "seller_server.py")


# -- clocks -----------------------------------------------------------------------

@pytest.mark.parametrize("offset", [30, -30], ids=["frontend-behind", "frontend-ahead"])
def test_deadlines_hold_when_the_clocks_disagree_by_30_s(tmp_path, unique, stoppable, offset):
    """Finding: a frontend 30 s ahead had a write it answered `unavailable` applied later;
    one 30 s behind had every request refused with no word of why."""
    clock = ("--test-clock-offset", str(offset))
    market = start_logged(tmp_path, clock, clock)
    stoppable.append(market)
    seller = market.seller()
    seller.register(unique("sal"))
    item_id = listing(seller, price=5)
    seller("ChangeItemPrice", item_id=item_id, price=6)
    buyer = market.buyer()
    buyer.register(unique("bo"))
    assert buyer("GetItem", item_id=item_id)["item"]["price"] == 6

    resume = stall(market, market.product_db)
    try:  # stalled past the frontend's --db-timeout (2 s), then woken
        assert seller.error("ChangeItemPrice", item_id=item_id, price=7) in (
            "unavailable", "deadline_exceeded")
    finally:
        resume()
    time.sleep(0.3)
    assert buyer("GetItem", item_id=item_id)["item"]["price"] == 6
    seller("ChangeItemPrice", item_id=item_id, price=8)
    assert buyer("GetItem", item_id=item_id)["item"]["price"] == 8

    side = "ahead of" if offset > 0 else "behind"
    warnings = [line for line in log_of(tmp_path, "seller_server.py").splitlines()
                if "WARNING" in line and "clock is 30" in line]
    assert warnings and all(side in line for line in warnings), warnings
    assert len(warnings) <= 2  # once per database, not once per connection


# -- the internal door --------------------------------------------------------------

PROOFS = ["é" * 64, "\u4e2d" * 64, "a" * 64, "0" * 64, "", 64, 1.5, -1, None, True, [],
          ["a" * 64], {}, {"proof": "a" * 64}]


def test_any_proof_is_forbidden_or_bad_request_never_internal(tmp_path):
    """Finding: a 64-character non-ASCII proof made `hmac.compare_digest` raise, a
    traceback per request in the log."""
    secret = tmp_path / "secret"
    secret.write_text(os.urandom(32).hex())
    secret.chmod(0o600)
    db = ServiceProcess("product_db.py", "--secret-file", str(secret),
                        log=tmp_path / "db.log").start()
    try:
        with Wire(db.address) as wire:
            codes = set()
            for proof in PROOFS:
                assert wire.ask("Hello")["ok"]
                reply = wire.ask("Authenticate", {"proof": proof})
                codes.add(reply["error"]["code"])
            codes.add(wire.ask("Authenticate", {})["error"]["code"])
            codes.add(wire.ask("GetItem", {"item_id": 1})["error"]["code"])
        assert codes == {"forbidden", "bad_request"}
    finally:
        db.stop()
    text = (tmp_path / "db.log").read_text()
    assert "Traceback" not in text and "internal" not in text


def start_with_secret(tmp_path: Path, content: bytes, mode: int) -> subprocess.CompletedProcess:
    """Start the product database with this secret file; stop it at once if it started."""
    secret = tmp_path / "secret"
    secret.write_bytes(content)
    secret.chmod(mode)
    proc = subprocess.Popen([sys.executable, str(ROOT / "product_db.py"), "--secret-file",
                             str(secret), "--port", "0"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready = proc.stdout.readline()
    if ready:
        proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, ready + stdout, stderr)


@pytest.mark.parametrize("content", [b"fifteen-bytes!!", b"\0" * 16, b"a" * 64],
                         ids=["short", "nul-bytes", "one-letter"])
def test_a_weak_secret_stops_the_start_in_one_line(tmp_path, content):
    result = start_with_secret(tmp_path, content, 0o600)
    assert result.returncode != 0 and "ready" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "too weak" in lines[0] and "Traceback" not in result.stderr


def test_a_secret_others_may_read_starts_with_a_warning(tmp_path):
    result = start_with_secret(tmp_path, os.urandom(32).hex().encode(), 0o644)
    assert "ready" in result.stdout
    assert [line for line in result.stderr.splitlines()
            if "WARNING" in line and "chmod 600" in line]
