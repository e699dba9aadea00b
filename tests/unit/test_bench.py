"""bench/ and performance.py's pure parts: soak windows, spreads, Stats deltas, the
load's buyers touching only their own sellers' items, and CPU figures with the resolution
they were read at."""
from __future__ import annotations

import argparse
from array import array

import pytest

import performance
from bench.charts import cpu_sources_text, cpu_stack_label, cpu_text
from bench.echo import ECHO_RESULT, EchoService
from bench.loadgen import BuyerBench, LoadResult, Tally, duration
from bench.report import cpu_per_op, cpu_ratio, spread
from bench.target import counted
from market.ops.launch import TICK_S, CpuReading


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


# -- CPU per operation: how finely each figure was read ------------------------------

def test_cpu_between_two_readings_takes_the_finest_way_both_have():
    before = CpuReading(stats_s=1.0, threads_ns={1: 10**9, 2: 0}, ticks_s=1.0)
    after = CpuReading(stats_s=1.000250, threads_ns={1: 10**9 + 300_000, 2: 0, 3: 5},
                       ticks_s=1.0)
    assert after.since(before) == {"cpu_s": 0.00025, "source": "stats",
                                   "resolution_s": 1e-6}
    # Not asked the second time (gone, no answer): the kernel's ns per thread ...
    spent = CpuReading(None, after.threads_ns, 1.0).since(before)
    assert spent["source"] == "schedstat" and spent["resolution_s"] == 1e-9
    assert abs(spent["cpu_s"] - 0.000300005) < 1e-12
    # ... unless a thread of the first reading has ended (its time would be lost): ticks.
    ended = CpuReading(None, {1: 2 * 10**9, 3: 0}, 1.01).since(before)
    assert ended["source"] == "ticks" and ended["resolution_s"] == TICK_S
    assert abs(ended["cpu_s"] - 0.01) < 1e-9
    assert CpuReading().since(before) == {"cpu_s": None, "source": "n/a",
                                          "resolution_s": None}


def measured_run(ok: int, spent: dict[str, tuple[float | None, str]]) -> dict:
    """A run's figures as ``LoadResult.figures`` has them: ``spent`` is, per process, its
    CPU seconds and how they were read."""
    ways = {"stats": 1e-6, "schedstat": 1e-9, "ticks": 0.01, "n/a": None}
    return {"ok": ok, "services_cpu_s": {name: s for name, (s, _) in spent.items()},
            "services_cpu_resolution": {name: {"source": way, "resolution_s": ways[way]}
                                        for name, (_, way) in spent.items()}}


def test_a_process_below_its_resolution_is_labelled_not_drawn_as_0():
    """1 + 1 read in 10 ms ticks: the customer database and the echo counted no tick."""
    ours = cpu_per_op([measured_run(400, {"customer database": (0.0, "ticks"),
                                          "buyer frontend": (0.06, "ticks")})], "services")
    echo = cpu_per_op([measured_run(400, {"echo": (0.0, "ticks"),
                                          "relay": (0.0, "ticks")})], "echo")
    row = {"buyers": 1, "sellers": 1, **ours, **echo}
    way = row["services_cpu_resolution"]["customer database"]
    assert way == {"source": "ticks", "resolution_s": 0.01, "resolution_us_per_op": 25.0,
                   "below_resolution": True}
    assert not row["services_cpu_resolution"]["buyer frontend"]["below_resolution"]
    assert row["services_cpu_us_per_op"]["buyer frontend"] == 150.0
    assert cpu_ratio(row) is None  # not 150 / 0, nor a ratio over a 0 that is no 0
    row["cpu_per_op_vs_echo"] = cpu_ratio(row)
    assert cpu_text(0.0, way) == "< 10 ms tick"
    assert cpu_text(150.0, row["services_cpu_resolution"]["buyer frontend"]) == "150"
    assert cpu_stack_label(row, "services") == ("150\ncustomer database < 10 ms tick\n"
                                                "(x echo: n/a)")
    assert cpu_stack_label(row, "echo") == "< 10 ms tick"  # not "0"
    assert cpu_sources_text([row]) == "from /proc/PID/stat ticks"


def test_figures_read_to_the_microsecond_make_a_ratio_and_unread_ones_are_na():
    row = {**cpu_per_op([measured_run(400, {"buyer frontend": (0.02, "stats"),
                                            "customer database": (None, "n/a")})],
                        "services"),
           **cpu_per_op([measured_run(400, {"echo": (0.004, "stats"),
                                            "relay": (0.006, "stats")})], "echo")}
    assert cpu_text(0.0, row["services_cpu_resolution"]["customer database"]) == "n/a"
    assert cpu_ratio(row) is None
    del row["services_cpu_us_per_op"]["customer database"]
    del row["services_cpu_resolution"]["customer database"]
    assert abs(cpu_ratio(row) - 50.0 / 25.0) < 1e-9
    row["cpu_per_op_vs_echo"] = cpu_ratio(row)
    assert cpu_stack_label(row, "services") == "50\n(2.00 x echo)"
    assert cpu_stack_label(row, "echo") == "25"
    assert cpu_sources_text([row]) == "from its Stats' cpu_s (process_time)"
    # Below 1 µs in one run of two is a figure still (the mean), not "below".
    runs = [measured_run(400, {"echo": (0.0, "stats")}),
            measured_run(400, {"echo": (0.0001, "stats")})]
    assert not cpu_per_op(runs, "echo")["echo_cpu_resolution"]["echo"]["below_resolution"]


def test_the_echo_answers_stats_itself_and_every_other_op_with_its_echo():
    echo = EchoService()
    assert echo.dispatch({"op": "GetItem", "args": {"item_id": 3}}) is ECHO_RESULT
    assert echo.dispatch({"op": "Login"}) is ECHO_RESULT
    stats = echo.dispatch({"op": "Stats"})
    assert stats["service"] == "service" and 0 < stats["cpu_s"] == round(stats["cpu_s"], 6)
