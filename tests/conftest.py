"""The tests' fixtures: the real services started as processes on free ports.

Only fixtures live here; what tests call lives in ``tests/helpers`` (see its
``__init__``), and no test module imports this file or another test module.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
for path in (ROOT, TESTS):  # ``market`` and ``protocol``; ``helpers``
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from helpers.market import Api, Market, start_market, unique_name  # noqa: E402


@pytest.fixture(scope="module")
def market():
    """One marketplace shared by a test module (tests use fresh usernames)."""
    m = start_market()
    yield m
    m.stop()


@pytest.fixture
def fresh_market():
    """A marketplace of its own for one test."""
    m = start_market()
    yield m
    m.stop()


@pytest.fixture
def durable_market(tmp_path):
    """A marketplace of its own for one test, whose databases keep their data in
    ``tmp_path`` (``--data-dir``): killed and restarted, each is the same market."""
    m = start_market(data_dir=tmp_path)
    yield m
    m.stop()


@pytest.fixture(scope="module")
def two_frontends():
    """A marketplace with a second buyer and a second seller frontend (``buyer_b``,
    ``seller_b``), shared by a test module."""
    m = start_market()
    m.buyer_b = m.another_frontend("buyer_server.py")
    m.seller_b = m.another_frontend("seller_server.py")
    yield m
    m.stop()


@pytest.fixture
def stoppable():
    """Markets started by a test (appended to this list), stopped after it."""
    markets: list[Market] = []
    yield markets
    for market in markets:
        market.stop()


@pytest.fixture
def seller(market, unique) -> Api:
    """A fresh seller of the module's market, logged in; ``seller_id`` set."""
    api = market.seller()
    api.seller_id = api.register(unique("seller"))
    return api


@pytest.fixture
def buyer(market, unique) -> Api:
    """A fresh buyer of the module's market, logged in; ``name`` and ``buyer_id`` set."""
    api = market.buyer()
    api.name = unique("buyer")
    api.buyer_id = api.register(api.name)
    return api


@pytest.fixture
def unique():
    """A function returning a fresh name with a prefix: unique('alice') -> 'alice7_123'."""
    return unique_name
