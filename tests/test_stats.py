"""Stats over real sockets: counters rise by exactly the requests served, latencies and
connections are what a client can see, and a database shows its Stats only to a
connection that proved the deployment's secret."""
from __future__ import annotations

import secrets
import time

import pytest
from helpers.market import start_market, wait_until
from helpers.wire import Wire

from market.net.client import Client
from market.ops.launch import ServiceProcess
from protocol import ApiError

DEAD = "127.0.0.1:1"  # nothing listens: a frontend that never needs its databases


def stats(client: Client) -> dict:
    return client.call("Stats")


def counts(reply: dict, key: str = "ops") -> dict[str, dict[str, int]]:
    """The outcome counts of a Stats reply, per op, without the latencies."""
    return {op: {outcome: n for outcome, n in figures.items() if not outcome.endswith("_ms")}
            for op, figures in reply[key].items()}


def rise(before: dict, after: dict) -> dict[str, dict[str, int]]:
    """What each op's outcome counts rose by from ``before`` to ``after`` (non-zero only)."""
    risen: dict[str, dict[str, int]] = {}
    for op, outcomes in after.items():
        for outcome, n in outcomes.items():
            if n != before.get(op, {}).get(outcome, 0):
                risen.setdefault(op, {})[outcome] = n - before.get(op, {}).get(outcome, 0)
    return risen


def test_counters_rise_by_exactly_the_requests_served(market, unique):
    buyer = market.buyer()
    customer_db = Client(market.customer_db.address)
    first, customer_first = stats(buyer.client), stats(customer_db)
    for _ in range(3):
        buyer("Hello")
    for op, args in [("NoSuchOp", {}), ("GetItem", {"item_id": 0}), ("DisplayCart", {}),
                     ("Login", {"username": unique("nobody"), "password": "pw"}),
                     ("GetItem", {"item_id": 0})]:
        with pytest.raises(ApiError):
            buyer(op, **args)
    second, customer_second = stats(buyer.client), stats(customer_db)
    customer_db.close()
    expected = {"Hello": {"ok": 3}, "other": {"unknown_op": 1}, "GetItem": {"bad_request": 2},
                "DisplayCart": {"invalid_session": 1}, "Login": {"auth_failed": 1},
                "Stats": {"ok": 1}}  # the first Stats; a reply never counts its own request
    assert rise(counts(first), counts(second)) == expected
    assert rise(counts(first, "ops_last_60s"), counts(second, "ops_last_60s")) == expected
    # The frontend's Login made exactly one GetSalt and one Login on the customer database.
    customer = rise(counts(customer_first), counts(customer_second))
    assert (customer["GetSalt"], customer["Login"]) == ({"ok": 1}, {"auth_failed": 1}), customer


def test_latency_fields_are_present_and_sane(market):
    seller = market.seller()
    for _ in range(20):
        seller("Hello")
    reply = stats(seller.client)
    hello = reply["ops"]["Hello"]
    assert 0 < hello["p50_ms"] <= hello["p99_ms"] < 1000
    every = reply["latency_last_60s"]
    assert 0 < every["p50_ms"] <= every["p99_ms"] < 1000
    assert 0 < reply["window_s"] <= 60 and reply["window_s"] <= reply["uptime_s"]
    assert reply["service"] == "seller" and reply["version"]
    assert 1 << 20 < reply["rss_bytes"] < 1 << 32
    for figures in reply["ops"].values():
        assert set(figures) >= {"p50_ms", "p99_ms"}


def test_a_frontend_shows_its_database_pools_and_password_queue(unique):
    market = start_market(buyer_args=("--db-pool", "3"))
    try:
        buyer = market.buyer()
        buyer.register(unique("pooled"))
        reply = stats(buyer.client)
        assert reply["password_queue"] == 0
        assert set(reply["pools"]) == {"customer_db", "product_db"}
        customer_pool = reply["pools"]["customer_db"]
        assert customer_pool["size"] == 3 and 1 <= customer_pool["open"] <= 3
        assert customer_pool["in_use"] == 0 and customer_pool["waits"] == 0
    finally:
        market.stop()


def test_connections_are_the_ones_held_open_and_refusals_are_counted():
    frontend = ServiceProcess("seller_server.py", "--product-db", DEAD, "--customer-db", DEAD,
                              "--max-connections", "4").start()
    held = []
    watcher = Client(frontend.address)
    try:
        assert stats(watcher)["connections"] == {"open": 1, "max": 4, "refused": 0}
        for _ in range(3):
            held.append(Client(frontend.address))
            held[-1].call("Hello")
        assert stats(watcher)["connections"] == {"open": 4, "max": 4, "refused": 0}
        with Wire(frontend.address) as refused:
            assert b'"unavailable"' in refused.read_line()
        assert stats(watcher)["connections"]["refused"] == 1
        for client in held:
            client.close()
        assert wait_until(lambda: stats(watcher)["connections"]["open"] == 1)
    finally:
        for client in [watcher, *held]:
            client.close()
        frontend.stop()


def test_a_databases_stats_need_the_secret_and_show_data_and_journal(tmp_path, unique):
    secret = secrets.token_hex(32)
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret)
    market = start_market(secret_file=secret_file,
                          customer_args=("--data-dir", str(tmp_path / "customer")))
    try:
        for db in (market.customer_db, market.product_db):
            stranger = Client(db.address)
            with pytest.raises(ApiError) as refused:
                stranger.call("Stats")
            assert refused.value.code == "forbidden"
            stranger.close()
        market.seller().register(unique("journaled"))
        customer = Client(market.customer_db.address, secret=secret.encode())
        reply = stats(customer)
        assert reply["service"] == "customer_db" and isinstance(reply["data"], dict)
        assert reply["ops"]["CreateAccount"]["ok"] == 1
        assert reply["ops"]["Authenticate"]["ok"] >= 1
        journal = reply["journal"]
        assert journal["bytes"] > 0 and journal["fsyncs"] >= 1
        assert time.time() - 60 < journal["last_fsync_at"] <= time.time()
        assert 0 <= journal["last_fsync_ms"] < 10_000
        product = Client(market.product_db.address, secret=secret.encode())
        assert stats(product)["journal"] is None  # memory only
        customer.close()
        product.close()
    finally:
        market.stop()
