"""performance.py --quick, end to end: real services, real sockets, real charts."""
import json
import subprocess
import sys

from conftest import ROOT, ServiceProcess, start_market
from market.client import Client

SCENARIO_FIELDS = ["buyers", "sellers", "runs", "ops_per_client", "avg_ms", "p50_ms", "p95_ms",
                   "p99_ms", "throughput_ops", "errors", "echo_throughput_ops",
                   "ratio_vs_echo", "per_op_avg_ms"]
ALL_OPS = {"RegisterItemForSale", "ChangeItemPrice", "UpdateUnitsForSale", "DisplayItemsForSale",
           "GetSellerRating", "SearchItemsForSale", "GetItem", "AddItemToCart",
           "RemoveItemFromCart", "DisplayCart", "MakePurchase", "ProvideFeedback",
           "GetBuyerPurchases"}


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
    assert set().union(*(row["per_op_avg_ms"] for row in rows)) == ALL_OPS

    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("scenario,buyers,sellers,runs,ops_per_client,avg_ms")
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["1x1", "4x4"]
    for chart in ("latency.png", "throughput.png", "latency_cdf.png"):
        data = (out / chart).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, chart


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


def test_clients_are_spread_over_every_frontend_given(tmp_path):
    """--target with two frontends of each role: each frontend serves about half the load."""
    market = start_market()
    dbs = ["--product-db", "%s:%d" % market.product_db.address,
           "--customer-db", "%s:%d" % market.customer_db.address]
    extra = [ServiceProcess(script, *dbs).start()
             for script in ("seller_server.py", "buyer_server.py")]
    frontends = [market.seller_server, extra[0], market.buyer_server, extra[1]]
    try:
        where = ["%s:%d" % frontend.address for frontend in frontends]
        target = f"{where[0]}+{where[1]},{where[2]}+{where[3]}"
        before = [frontend.cpu_s() for frontend in frontends]
        run = subprocess.run([sys.executable, str(ROOT / "performance.py"), "--quick",
                              "--scenarios", "2x2", "--target", target, "--out",
                              str(tmp_path / "spread")], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        used = [frontend.cpu_s() - spent for frontend, spent in zip(frontends, before)]
        for pair in (used[:2], used[2:]):  # each of a role's two did real work
            assert min(pair) > 0.2 * max(pair) > 0, used
        assert all(Client(f.address).call("Hello")["service"] for f in frontends)
    finally:
        for frontend in extra:
            frontend.stop()
        market.stop()
