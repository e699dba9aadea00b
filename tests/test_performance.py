"""performance.py --quick, end to end: real services, real sockets, real charts."""
import json
import subprocess
import sys

from conftest import ROOT

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
