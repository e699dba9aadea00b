"""Service logs: a user's ordinary mistake is INFO; what an operator must look at is WARNING."""
from __future__ import annotations

from conftest import ServiceProcess, wait_until
from market.client import Client
from protocol import ApiError


def test_user_errors_are_info_and_trouble_is_a_warning(tmp_path):
    log = tmp_path / "buyer.log"
    dead = "127.0.0.1:1"  # nothing listens: every database call is 'unavailable'
    frontend = ServiceProcess("buyer_server.py", "--product-db", dead, "--customer-db", dead,
                              "--db-timeout", "1", log=log).start()
    client = Client(frontend.address)
    try:
        for op, args, code in [("NoSuchOp", {}, "unknown_op"),
                               ("GetItem", {"item_id": 0}, "bad_request"),
                               ("DisplayCart", {}, "invalid_session"),
                               ("GetItem", {"item_id": 1}, "unavailable")]:
            try:
                client.call(op, args, "x" * 43 if op == "GetItem" else None)
            except ApiError as error:
                assert error.code == code, op
        assert wait_until(lambda: "GetItem failed: unavailable" in log.read_text())
    finally:
        client.close()
        frontend.stop()
    lines = log.read_text().splitlines()
    levels = {line.split(" failed: ")[1]: line.split()[3] for line in lines if " failed: " in line}
    assert levels == {"unknown_op": "INFO", "bad_request": "INFO", "invalid_session": "INFO",
                      "unavailable": "WARNING"}, lines
