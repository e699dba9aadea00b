"""bench/ and performance.py's pure parts: soak windows, spreads, Stats deltas, and the
load's buyers touching only their own sellers' items."""
from __future__ import annotations

import argparse
from array import array

import pytest

import performance
from bench.loadgen import BuyerBench, LoadResult, Tally, duration
from bench.report import spread
from bench.target import counted


def soak_result(ok_starts: list[float], window: float) -> LoadResult:
    """A run whose ok ops (1 ms each) started at ``ok_starts`` seconds, tallied by window."""
    tally = Tally()
    for at in ok_starts:
        index = int(at // window)
        tally.windows.setdefault(index, array("d")).append(0.001)
        tally.window_outcomes[(index, "GetItem", "ok")] += 1
    tally.latencies["GetItem"] = array("d", [0.001] * len(ok_starts))
    return LoadResult([{"tally": tally, "started": 0.0, "ended": max(ok_starts),
                        "cpu_s": 0.0}], None)


def test_a_soak_is_reported_per_full_minute_with_a_shorter_tail_apart():
    result = soak_result([1.0] * 600 + [61.0] * 50, 60.0)
    windows, tail = result.window_figures(60.0, 65.0)
    assert [(w["window"], w["seconds"], w["ok"]) for w in windows] == [(0, 60.0, 600)]
    assert windows[0]["throughput_ops"] == 10.0
    assert (tail["window"], tail["seconds"], tail["ok"], tail["throughput_ops"]) == (1, 5.0, 50,
                                                                                     10.0)


def test_a_soak_of_whole_minutes_has_no_tail():
    windows, tail = soak_result([1.0, 61.0], 60.0).window_figures(60.0, 120.0)
    assert [w["ok"] for w in windows] == [1, 1] and tail is None


def test_one_run_shows_no_spread_two_show_their_std():
    assert spread(2319.4, 0.0, 1) == "2,319"
    assert spread(2319.4, 85.2, 2) == "2,319 ± 85"
    assert spread(0.6123, 0.05, 3, 2) == "0.61 ± 0.05"


def test_time_left_reads_in_minutes_and_seconds():
    assert duration(45.4) == "about 45 s"
    assert duration(200) == "about 3 min 20 s"
    assert duration(None) == "time unknown"


def test_only_takes_one_op_of_each_roles_mix():
    assert performance.parse_only("ChangeItemPrice,GetItem") == {"seller": "ChangeItemPrice",
                                                                 "buyer": "GetItem"}
    for wrong in ("GetItem,ChangeItemPrice", "ChangeItemPrice", "Login,GetItem"):
        with pytest.raises(argparse.ArgumentTypeError):
            performance.parse_only(wrong)


def test_progress_names_the_scenario_and_run_and_says_when_all_are_done():
    progress = performance.Progress([(1, 1), (10, 10)], runs=2, ops=5)
    assert progress.label(1, 2) == "scenario 2 of 2 (10x10), run 2 of 2"
    assert progress.advance(2 * 2 * 5 * 2).endswith("left in all")
    assert progress.advance(2 * 20 * 5 * 2) == "all runs done"


def test_stats_delta_counts_each_outcome_but_not_latencies_or_stats_itself():
    before = {"available": True, "ops": {"GetItem": {"ok": 5, "not_found": 1, "p50_ms": 0.3},
                                         "Stats": {"ok": 2}}}
    after = {"available": True, "ops": {"GetItem": {"ok": 9, "not_found": 1, "p50_ms": 0.4},
                                        "Login": {"ok": 2, "auth_failed": 1},
                                        "Stats": {"ok": 3}}}
    assert counted(before, after) == {"ok": 6, "not_found": 0, "auth_failed": 1}
    assert counted({"available": False, "reason": "unknown_op"}, after) is None


def buyer(own_sellers: set[int]) -> BuyerBench:
    bench = BuyerBench(("127.0.0.1", 1), "bench-test-b0", "seed")
    bench.own_sellers = own_sellers
    return bench


def test_a_buyer_never_picks_an_item_of_a_seller_not_its_own():
    bench = buyer({7})
    bench.learn([(1, 7), (2, 8)])
    bench.on_ok("SearchItemsForSale", {"category": 0, "limit": 20},
                {"items": [{"item_id": 3, "seller_id": 8}, {"item_id": 4, "seller_id": 7}]})
    assert sorted(bench.items) == [1, 4] and bench.last_found == [4]
    picked = set()
    for _ in range(2000):
        op, args = bench.next_op()
        if "item_id" in args:
            picked.add(args["item_id"])
        if "seller_id" in args:
            assert args["seller_id"] == 7
        bench.on_ok(op, args, {"cart": {"lines": []}} if op == "DisplayCart" else {})
    assert picked == {1, 4}
