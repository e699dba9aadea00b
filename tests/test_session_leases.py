"""Sessions in the frontends' copies (docs/architecture.md, "Leases and copies"): a frontend
holding a lease answers session checks itself, and a session that ends is still refused at
once at every frontend."""
from __future__ import annotations

import time

import pytest
from helpers.market import Api, start_market

from market.net.client import Client
from market.ops.launch import ServiceProcess

TIMEOUT = 1.0  # seconds a session may idle
# A frontend may answer a session's checks itself for longer than the timeout: one that
# answered past its time, or was not told of an end, would still say ok when the tests below
# expect invalid_session.
LONG_CACHE = 2.0


@pytest.fixture(scope="module")
def two_buyer_frontends():
    """A market with two buyer frontends that may answer sessions' checks themselves for
    longer than the session timeout."""
    market = start_market(session_timeout=TIMEOUT,
                          customer_args=("--test-session-cache", str(LONG_CACHE)))
    dbs = ["--product-db", market.product_db.where, "--customer-db", market.customer_db.where]
    other = ServiceProcess("buyer_server.py", *dbs).start()
    stats = Client(market.customer_db.address)
    yield market, Api(Client(other.address)), stats
    stats.close()
    other.stop()
    market.stop()


def session_checks(stats: Client) -> int:
    return stats.call("Stats")["ops"].get("CheckSession", {}).get("ok", 0)


def leased(api: Api, stats: Client) -> bool:
    """Whether ``api``'s frontend now answers a read of its session from its copy (a read
    that the customer database did not see)."""
    for _ in range(50):  # the frontend's follower starts with the frontend
        api("SearchItemsForSale", category=1)
        before = session_checks(stats)
        api("SearchItemsForSale", category=2)
        if session_checks(stats) == before:
            return True
        time.sleep(0.05)
    return False


def logged_in_at_both(market, other: Api, unique) -> tuple[Api, Api]:
    here = market.buyer()
    name = unique("lease")
    here.register(name)
    other.session = here.session
    return here, other


def test_logout_at_one_frontend_is_refused_at_once_at_another(two_buyer_frontends, unique):
    market, other, stats = two_buyer_frontends
    here, there = logged_in_at_both(market, other, unique)
    assert leased(there, stats) and leased(here, stats)
    here("Logout")
    assert there.error("SearchItemsForSale", category=1) == "invalid_session"
    assert there.error("GetItem", item_id=1) == "invalid_session"
    assert here.error("SearchItemsForSale", category=1) == "invalid_session"


def test_expired_session_is_refused_at_once_at_every_frontend(two_buyer_frontends, unique):
    market, other, stats = two_buyer_frontends
    here, there = logged_in_at_both(market, other, unique)
    assert leased(there, stats) and leased(here, stats)
    # The database counts the 2 s a frontend may answer as use: the session expires 3 to
    # 3.25 s after the check (the sweeper runs every 0.25 s).
    # A sleep, the point of the test: the session must lie unused until it has expired; the database shows the session gone
    # before it has told the frontends, so there is nothing to wait on that the checks
    # below do not test themselves.
    time.sleep(LONG_CACHE + TIMEOUT + 0.5)
    assert there.error("SearchItemsForSale", category=1) == "invalid_session"
    assert here.error("SearchItemsForSale", category=1) == "invalid_session"


def test_reads_from_leases_keep_the_session_alive():
    """Reads every 0.3 s for twice the timeout, answered by the frontend itself for a quarter
    of the timeout after each check, then checked again: the idle timer is refreshed and the
    session lives."""
    timeout = 1.0
    market = start_market(session_timeout=timeout,
                          customer_args=("--test-session-cache", str(timeout / 4)))
    try:
        buyer = market.buyer()
        buyer.register("keeps-alive")
        stats = Client(market.customer_db.address)
        assert leased(buyer, stats)
        stats.close()
        ends = time.monotonic() + 2 * timeout
        while time.monotonic() < ends:
            buyer("SearchItemsForSale", category=1)
            time.sleep(0.3)
        buyer("SearchItemsForSale", category=3)
    finally:
        market.stop()
