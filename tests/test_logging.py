"""Service logs: every line time-stamped and named; a user's ordinary mistake only at DEBUG
(one line per request with op, outcome and duration); what an operator must look at is a
WARNING; a failed start says why with a time stamp too."""
from __future__ import annotations

import re
import subprocess
import sys

from helpers.market import ROOT, wait_until

from market.net.client import Client
from market.ops.launch import ServiceProcess
from protocol import ApiError

DEAD = "127.0.0.1:1"  # nothing listens: every database call is 'unavailable'
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<service>\w+)\[\d+\] "
                  r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) market(?:\.\w+)+: (?P<message>.*)$")
# What each request below is answered: a user error each, then one for an operator.
REQUESTS = [("NoSuchOp", {}, None, "unknown_op"),
            ("GetItem", {"item_id": 0}, "x" * 43, "bad_request"),
            ("DisplayCart", {}, None, "invalid_session"),
            ("GetItem", {"item_id": 1}, "x" * 43, "unavailable")]


def served_log(tmp_path, level: str) -> list[re.Match]:
    """Send REQUESTS to a buyer frontend without databases, logging at ``level``; its
    log's lines, each checked for a time stamp, the service's name and a level."""
    log = tmp_path / "buyer.log"
    frontend = ServiceProcess("buyer_server.py", "--product-db", DEAD, "--customer-db", DEAD,
                              "--db-timeout", "1", "--log-level", level, log=log).start()
    client = Client(frontend.address)
    try:
        for op, args, session, code in REQUESTS:
            try:
                client.call(op, args, session)
            except ApiError as error:
                assert error.code == code, op
        assert wait_until(lambda: "GetItem failed: unavailable" in log.read_text())
    finally:
        client.close()
        frontend.stop()
    lines = log.read_text().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    assert {match["service"] for match in matches} == {"buyer"}
    return matches


def test_at_info_user_errors_are_silent_and_trouble_is_a_warning(tmp_path):
    """The trouble (a database that cannot be reached) is one WARNING, from the link to it;
    each request it fails is an INFO line, not a WARNING per request."""
    matches = served_log(tmp_path, "INFO")
    failures = [(match["level"], match["message"]) for match in matches
                if " failed: " in match["message"] and match["message"].startswith("GetItem")]
    assert [level for level, _ in failures] == ["INFO"], failures
    assert "failed: unavailable" in failures[0][1]
    trouble = sorted(match["message"].split(" at ")[0] for match in matches
                     if match["level"] == "WARNING")
    assert trouble == ["cannot reach the customer database",
                       "cannot reach the product database"], trouble
    for code in ("unknown_op", "bad_request", "invalid_session"):
        assert not any(code in match["message"] for match in matches), code


def test_at_debug_each_request_has_one_line_with_op_outcome_and_duration(tmp_path):
    matches = served_log(tmp_path, "DEBUG")
    request_line = re.compile(r"^(\w+) (ok|failed: (\w+)) in (\d+\.\d\d) ms, "
                              r"peer 127\.0\.0\.1:\d+$")
    served = [(request_line.match(match["message"]), match["level"]) for match in matches]
    served = [(found[1], found[3], level, float(found[4])) for found, level in served if found]
    assert [(op, code, level) for op, code, level, _ in served] == [
        ("NoSuchOp", "unknown_op", "DEBUG"), ("GetItem", "bad_request", "DEBUG"),
        ("DisplayCart", "invalid_session", "DEBUG"), ("GetItem", "unavailable", "INFO")]
    assert all(0 <= ms < 5000 for *_, ms in served)


def test_a_failed_start_says_why_with_a_time_stamp(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "product_db.py"), "--port", "0",
                             "--secret-file", str(tmp_path / "missing")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stdout == ""
    match = LINE.match(result.stderr.strip())
    assert match and match["level"] == "CRITICAL", result.stderr
    assert f"cannot read the secret file {tmp_path / 'missing'}" in match["message"]
