"""market/stats.py (counting requests, percentiles, the last minute) and the figures
market/status.py makes of a Stats reply; in process, with explicit times."""
from __future__ import annotations

import pytest

from market.net.stats import (
    BUCKET_GROWTH,
    SLOT_S,
    RequestStats,
    percentile_ms,
    rss_bytes,
)
from market.ops.status import duration, summary

START = 1000.0  # a perf_counter reading, the start of a slot


def recorded(*requests: tuple[str, str, float, float]) -> RequestStats:
    """A RequestStats started at START holding (op, outcome, started, ms) requests."""
    stats = RequestStats(START)
    for op, outcome, started, ms in requests:
        stats.record(op, outcome, started, started + ms / 1000)
    return stats


def test_outcomes_are_counted_per_op_since_start_and_over_the_last_minute():
    stats = recorded(("Login", "ok", START, 1), ("Login", "ok", START + 1, 1),
                     ("Login", "auth_failed", START + 2, 1), ("GetItem", "not_found", START, 1))
    figures = stats.snapshot(START + 10)
    assert {op: {k: v for k, v in counts.items() if not k.endswith("_ms")}
            for op, counts in figures["ops"].items()} == {
        "Login": {"ok": 2, "auth_failed": 1}, "GetItem": {"not_found": 1}}
    assert figures["ops_last_60s"] == {"Login": {"ok": 2, "auth_failed": 1},
                                       "GetItem": {"not_found": 1}}
    assert figures["uptime_s"] == 10 and figures["window_s"] == 10


def test_the_last_minute_forgets_older_requests_but_the_totals_keep_them():
    stats = recorded(("Hello", "ok", START, 1), ("Hello", "ok", START + 70, 1))
    figures = stats.snapshot(START + 71)
    assert figures["ops"]["Hello"]["ok"] == 2
    assert figures["ops_last_60s"] == {"Hello": {"ok": 1}}
    assert 55 <= figures["window_s"] <= 60
    later = stats.snapshot(START + 200)
    assert later["ops_last_60s"] == {} and later["ops"]["Hello"]["ok"] == 2
    assert later["ops"]["Hello"]["p50_ms"] is None and later["ops"]["Hello"]["p99_ms"] is None


def test_a_reused_slot_starts_empty():
    slots_in_a_minute = int(60 / SLOT_S)
    stats = recorded(("Hello", "ok", START, 500), ("Hello", "ok", START + 60, 1))
    assert (START + 60) // SLOT_S % slots_in_a_minute == START // SLOT_S % slots_in_a_minute
    figures = stats.snapshot(START + 61)
    assert figures["ops_last_60s"] == {"Hello": {"ok": 1}}
    assert figures["ops"]["Hello"]["p99_ms"] < 2


def test_percentiles_come_from_the_last_minute_within_a_bucket():
    requests = [("Op", "ok", START + n * 0.01, 1.0) for n in range(98)]
    requests += [("Op", "ok", START + 1, 200.0), ("Op", "ok", START + 2, 200.0)]
    figures = recorded(*requests).snapshot(START + 3)["ops"]["Op"]
    assert figures["p50_ms"] == pytest.approx(1.0, rel=BUCKET_GROWTH - 1)
    assert figures["p99_ms"] == pytest.approx(200.0, rel=BUCKET_GROWTH - 1)


def test_the_latency_of_every_request_is_over_all_ops():
    requests = [("Fast", "ok", START, 1.0)] * 98 + [("Slow", "conflict", START, 200.0)] * 2
    latency = recorded(*requests).snapshot(START + 1)["latency_last_60s"]
    assert latency["p50_ms"] == pytest.approx(1.0, rel=BUCKET_GROWTH - 1)
    assert latency["p99_ms"] == pytest.approx(200.0, rel=BUCKET_GROWTH - 1)
    assert RequestStats(START).snapshot(START + 1)["latency_last_60s"] == {
        "p50_ms": None, "p99_ms": None}


def test_long_polls_are_left_out_of_the_latency_of_every_request_but_counted():
    stats = recorded(*[("Fast", "ok", START, 1.0)] * 50, *[("Follow", "ok", START, 300.0)] * 50)
    stats.long_polls.add("Follow")
    figures = stats.snapshot(START + 1)
    assert figures["latency_last_60s"]["p99_ms"] == pytest.approx(1.0, rel=BUCKET_GROWTH - 1)
    assert figures["ops"]["Follow"]["ok"] == 50
    assert figures["ops"]["Follow"]["p50_ms"] == pytest.approx(300.0, rel=BUCKET_GROWTH - 1)


def test_percentile_ms_of_an_empty_histogram_is_none_and_of_the_extremes_is_bounded():
    assert percentile_ms([0] * 5, 0.5) is None
    tiny = recorded(("Op", "ok", START, 0.0)).snapshot(START + 1)["ops"]["Op"]
    assert 0 < tiny["p50_ms"] < 0.01
    huge = recorded(("Op", "ok", START, 10 ** 7)).snapshot(START + 10 ** 4)["ops"]["Op"]
    assert huge["p99_ms"] > 100_000


def test_rss_bytes_is_the_memory_in_use():
    assert 1 << 20 < rss_bytes() < 1 << 40


# -- market.ops.status: what a row makes of a Stats reply --------------------------------

def test_a_rows_figures_leave_out_stats_requests():
    reply = {"uptime_s": 90.0, "window_s": 50.0, "rss_bytes": 1, "connections": {},
             "latency_last_60s": {"p50_ms": 1.0, "p99_ms": 9.0},
             "ops": {"Login": {"ok": 9, "p50_ms": 1.0, "p99_ms": 4.0},
                     "GetItem": {"ok": 1, "p50_ms": 0.5, "p99_ms": 9.0},
                     "Stats": {"ok": 99, "p50_ms": 50.0, "p99_ms": 80.0}},
             "ops_last_60s": {"Login": {"ok": 90, "auth_failed": 2},
                              "GetItem": {"ok": 10, "not_found": 3},
                              "Stats": {"ok": 99}}}
    row = summary(reply)
    assert row["ok_per_s"] == 2.0 and row["errors"] == 5
    assert row["errors_by_code"] == {"auth_failed": 2, "not_found": 3}
    assert row["p99_ms"] == 9.0


@pytest.mark.parametrize("seconds, shown", [(0.4, "0s"), (59, "59s"), (61, "1m 1s"),
                                            (3 * 3600 + 120, "3h 2m"), (2 * 86400 + 7200, "2d 2h")])
def test_durations_are_short(seconds, shown):
    assert duration(seconds) == shown
