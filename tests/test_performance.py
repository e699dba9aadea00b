"""performance.py --quick, end to end: real services, real sockets, real charts."""
import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
from helpers.market import CARD, ROOT, every_page, start_market

from bench.deploy import Deployment
from bench.echo import ECHO_RESULT, start_echo_chain
from bench.loadgen import KEYWORD_CHOICES
from market.net.client import Client
from market.ops.launch import ServiceProcess
from protocol import ApiError

SCENARIO_FIELDS = ["buyers", "sellers", "runs", "ops_per_client", "avg_ms", "p50_ms", "p95_ms",
                   "p99_ms", "throughput_ops", "errors", "echo_throughput_ops",
                   "ratio_vs_echo", "per_op_avg_ms"]
ALL_OPS = {"RegisterItemForSale", "ChangeItemPrice", "UpdateUnitsForSale", "DisplayItemsForSale",
           "GetSellerRating", "SearchItemsForSale", "GetItem", "AddItemToCart",
           "RemoveItemFromCart", "DisplayCart", "MakePurchase", "ProvideFeedback",
           "GetBuyerPurchases"}
SERVICES = {"product database", "customer database", "seller frontend", "buyer frontend"}


def test_quick_benchmark_writes_sane_results_and_charts(tmp_path):
    out = tmp_path / "perf"
    run = subprocess.run([sys.executable, str(ROOT / "performance.py"), "--quick",
                          "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=90)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())

    assert report["machine"]["cores"] >= 1
    assert report["machine"]["python"].startswith("3.")
    assert report["machine"]["platform"]
    rows = report["scenarios"]
    assert [(r["buyers"], r["sellers"]) for r in rows] == [(1, 1), (4, 4)]
    for row in rows:
        assert set(SCENARIO_FIELDS) <= row.keys(), row["scenario"]
        assert row["runs"] == 1 and row["ops_per_client"] == 50
        assert row["errors"] == 0 and row["unexpected"] == 0 and row["echo_errors"] == 0, row
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] < 5000
        assert 0 < row["avg_ms"] <= row["p99_ms"]
        assert row["throughput_ops"] > 0 and row["echo_throughput_ops"] > 0
        assert abs(row["ratio_vs_echo"]
                   - row["throughput_ops"] / row["echo_throughput_ops"]) < 1e-9
        # Every client finished its operations: ok plus expected conflicts.
        clients = row["buyers"] + row["sellers"]
        assert sum(row["per_op_ok"].values()) + row["conflicts"] == clients * 50
        assert all(ms > 0 for ms in row["per_op_avg_ms"].values())
        assert 0 < row["generator_cpu_pct_of_core"] <= 100 * report["machine"]["cores"]
        # CPU per ok operation of each process over the timed part, read from each
        # one's Stats to the µs: even a run this short shows every process above 0.
        assert set(row["services_cpu_us_per_op"]) == SERVICES, row["services_cpu_us_per_op"]
        assert set(row["echo_cpu_us_per_op"]) == {"echo", "relay"}
        for who in ("services", "echo"):
            for name, way in row[f"{who}_cpu_resolution"].items():
                assert way["source"] == "stats" and way["resolution_s"] == 1e-6, (name, way)
                assert not way["below_resolution"], (name, way)
                assert row[f"{who}_cpu_us_per_op"][name] > 0, (name, row[f"{who}_cpu_us_per_op"])
        assert abs(row["services_cpu_us_per_op_total"]
                   - sum(row["services_cpu_us_per_op"].values())) < 1e-6
        assert 0 < row["services_cpu_us_per_op_total"] < 100_000
        assert abs(row["cpu_per_op_vs_echo"] - row["services_cpu_us_per_op_total"]
                   / row["echo_cpu_us_per_op_total"]) < 1e-9
        assert row["service_stats_counted"] is None  # services of its own: no Stats taken
    assert sum(row["services_cpu_us_per_op_total"] for row in rows) > 0
    assert set().union(*(row["per_op_avg_ms"] for row in rows)) == ALL_OPS
    # One run has no spread: no "±0"; progress names the scenario, in plain lines.
    assert "±" not in run.stdout and "1 run per scenario: no spread" in run.stdout
    assert "CPU per ok operation" in run.stdout
    assert "scenario 2 of 2 (4x4), run 1 of 1" in run.stderr and "\r" not in run.stderr

    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("scenario,buyers,sellers,runs,ops_per_client,avg_ms")
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["1x1", "4x4"]
    for chart in ("latency.png", "throughput.png", "latency_cdf.png", "cpu_per_op.png"):
        data = (out / chart).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, chart


def test_only_runs_one_op_per_role_for_both_the_market_and_the_echo_chain(tmp_path):
    """--only GetSellerRating,GetBuyerPurchases: what one op costs beside the echo chain."""
    out = tmp_path / "perf"
    run = subprocess.run([sys.executable, str(ROOT / "performance.py"), "--quick",
                          "--scenarios", "2x2", "--only", "GetSellerRating,GetBuyerPurchases",
                          "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=90)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    assert report["config"]["only"] == {"seller": "GetSellerRating",
                                        "buyer": "GetBuyerPurchases"}
    row = report["scenarios"][0]
    assert row["per_op_ok"] == {"GetSellerRating": 2 * 50, "GetBuyerPurchases": 2 * 50}
    assert row["errors"] == 0 and row["echo_errors"] == 0 and row["echo_throughput_ops"] > 0


LARGE_MARKET_OPS = ["DisplayItemsForSale first page", "DisplayItemsForSale later page",
                    "GetBuyerPurchases first page", "GetBuyerPurchases later page",
                    "SearchItemsForSale", "SearchItemsForSale keywords", "GetItem",
                    "AddItemToCart", "DisplayCart", "RemoveItemFromCart"]


def test_quick_large_market_scenario_times_every_op_on_both_sizes(tmp_path):
    """The data-size scenario at a small scale: it builds, times every op, and charts."""
    out = tmp_path / "large"
    run = subprocess.run([sys.executable, str(ROOT / "performance.py"), "--large-market",
                          "--quick", "--out", str(out)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "large_market.json").read_text())
    large = report["config"]["markets"]["large"]
    assert (large["items"], large["seller_items"], large["purchases"]) == (2000, 500, 250)
    assert [op["op"] for op in report["ops"]] == LARGE_MARKET_OPS
    for op in report["ops"]:
        for size in ("small", "large"):
            figures = op[size]
            assert figures["failures"] == 0 and figures["samples"] == 50, (op["op"], size)
            assert 0 < figures["p50_ms"] <= figures["p99_ms"], (op["op"], size)
        assert abs(op["ratio_p50"] - op["large"]["p50_ms"] / op["small"]["p50_ms"]) < 1e-9
    entries = {op["op"]: op["large"]["entries"] for op in report["ops"]}
    assert entries["DisplayItemsForSale later page"] == entries["GetBuyerPurchases later page"] \
        == 100
    assert entries["SearchItemsForSale"] == entries["SearchItemsForSale keywords"] == 20
    assert (out / "latency_by_size.png").read_bytes().startswith(b"\x89PNG")


@dataclass
class TargetedRun:
    """A benchmark run with --target on a market where someone else trades too."""

    frontends: list  # seller, seller, buyer, buyer
    databases: list  # product, customer
    cpu_used: list[float]  # by each frontend during the benchmark
    others_before: dict
    others_after: dict
    report: dict


def others_view(market, alice_items: list[int]) -> dict:
    """All a user can see of alice's and bob's things: alice's items (units, votes), her
    listing and rating; bob's saved cart (a fresh login starts from it) and purchases;
    and what a search of each category shows."""
    alice = market.seller()
    seller_id = alice.login("alice_perf")["seller_id"]
    bob = market.buyer()
    bob.login("bob_perf")
    return {"items": [bob("GetItem", item_id=item_id) for item_id in alice_items],
            "listing": every_page(alice, "DisplayItemsForSale", "items"),
            "rating": bob("GetSellerRating", seller_id=seller_id),
            "cart": bob("DisplayCart"),
            "purchases": every_page(bob, "GetBuyerPurchases", "purchases"),
            "search": [[item["item_id"] for item in bob("SearchItemsForSale", category=category,
                                                         limit=500)["items"]]
                       for category in range(10)]}


@pytest.fixture(scope="module")
def targeted(tmp_path_factory) -> TargetedRun:
    """Two frontends of each role; alice lists an item in every category, with the
    keywords the benchmark searches for and few units; bob bought and rated one and
    saved a cart of two others. Then performance.py --quick --target runs on it."""
    market = start_market()
    dbs = ["--product-db", "%s:%d" % market.product_db.address,
           "--customer-db", "%s:%d" % market.customer_db.address]
    extra = [ServiceProcess(script, *dbs).start()
             for script in ("seller_server.py", "buyer_server.py")]
    frontends = [market.seller_server, extra[0], market.buyer_server, extra[1]]
    try:
        alice = market.seller()
        alice.seller_id = alice.register("alice_perf")
        items = [alice("RegisterItemForSale", name=f"alice's {number}", category=number,
                       keywords=list(KEYWORD_CHOICES[number % 8:number % 8 + 3]), condition="used",
                       price=5, quantity=3)["item_id"] for number in range(10)]
        bob = market.buyer()
        bob.register("bob_perf")
        bob("AddItemToCart", item_id=items[0], quantity=1)
        bob("MakePurchase", **CARD)
        bob("ProvideFeedback", item_id=items[0], vote="down")
        bob("AddItemToCart", item_id=items[1], quantity=2)
        bob("AddItemToCart", item_id=items[2], quantity=1)
        bob("SaveCart")
        before = others_view(market, items)
        where = ["%s:%d" % frontend.address for frontend in frontends]
        spent = [frontend.cpu_s() for frontend in frontends]
        out = tmp_path_factory.mktemp("targeted")
        run = subprocess.run([sys.executable, str(ROOT / "performance.py"), "--quick",
                              "--scenarios", "2x2", "--out", str(out),
                              "--target", f"{where[0]}+{where[1]},{where[2]}+{where[3]}",
                              "--target-dbs", f"{market.product_db.where},"
                                              f"{market.customer_db.where}"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        used = [frontend.cpu_s() - cpu for frontend, cpu in zip(frontends, spent)]
        yield TargetedRun(frontends, [market.product_db, market.customer_db], used, before,
                          others_view(market, items),
                          json.loads((out / "results.json").read_text()))
    finally:
        for frontend in extra:
            frontend.stop()
        market.stop()


def test_clients_are_spread_over_every_frontend_given(targeted):
    """--target with two frontends of each role: each frontend serves about half the load."""
    used = targeted.cpu_used
    for pair in (used[:2], used[2:]):  # each of a role's two did real work
        assert min(pair) > 0.2 * max(pair) > 0, used
    assert all(Client(f.address).call("Hello")["service"] for f in targeted.frontends)


def test_target_leaves_other_users_items_units_ratings_and_cart_untouched(targeted):
    """... and takes its own items off sale afterwards: searches show what they did."""
    before, after = targeted.others_before, targeted.others_after
    assert [item["item"]["quantity"] for item in before["items"]] == [2] + [3] * 9
    assert len(before["cart"]["cart"]["lines"]) == 2
    assert after == before
    row = targeted.report["scenarios"][0]
    assert row["errors"] == 0 and row["unexpected"] == 0
    assert row["per_op_ok"]["MakePurchase"] > 0 and row["per_op_ok"]["AddItemToCart"] > 0
    listed = 2 * 10 + row["per_op_ok"].get("RegisterItemForSale", 0)  # 2 sellers, 10 each
    assert row["withdrawn"]["failed"] == 0 and 0 < row["withdrawn"]["items"] <= listed


def test_target_results_carry_each_services_stats_or_why_not(targeted):
    """Each frontend's and database's Stats before and after the run, summed: what it
    counted, or 'not available' with the reason when it has no Stats."""
    counted = targeted.report["scenarios"][0]["service_stats_counted"]
    services = targeted.frontends + targeted.databases
    assert set(counted) == {service.where for service in services}
    for service in services:
        entry = counted[service.where]
        try:
            Client(service.address).call("Stats")
        except ApiError as error:
            assert entry == {"available": False, "reason": error.code}
            continue
        assert entry["available"] and entry["outcomes"]["ok"] > 0, entry


def test_every_services_stats_has_a_cpu_s_that_grows_with_work(tmp_path):
    """A database of the market and both processes of the echo chain answer Stats with
    their CPU time (µs), which work makes grow; the benchmark reads it from there."""
    chain = start_echo_chain(tmp_path / "logs")
    product_db = ServiceProcess("product_db.py").start()
    deployment = Deployment([product_db, *chain.services], {})
    client, database = Client(chain.addresses["buyer"]), Client(product_db.address)
    try:
        before = deployment.cpu_readings()
        first = {service.name: Client(service.address).call("Stats")["cpu_s"]
                 for service in deployment.services}
        for _ in range(1000):
            assert client.call("GetItem", {"item_id": 1}) == ECHO_RESULT  # relay -> echo
            database.call("Hello")
        second = {service.name: Client(service.address).call("Stats")["cpu_s"]
                  for service in deployment.services}
        spent = deployment.cpu_since(before)
    finally:
        client.close()
        database.close()
        deployment.stop()
    assert set(first) == {"product database", "echo", "relay"}, first
    for name, start in first.items():
        assert 0 < start < second[name], (name, first, second)
        assert second[name] - start > 0.01, (name, first, second)  # 1,000 requests
        assert spent[name]["source"] == "stats" and spent[name]["resolution_s"] == 1e-6
        assert second[name] - start <= spent[name]["cpu_s"], (name, spent)
