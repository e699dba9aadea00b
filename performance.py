"""Benchmark of the marketplace: latency, throughput and the limit of its own stack.

Run ``python3 performance.py`` (``--help`` for the flags). By default it runs the
scenarios 1+1, 10+10 and 100+100 (buyers + sellers), 10 runs each; every run
starts four fresh services on free ports (so no run inherits the items of an
earlier one), sets every client up before the clock starts (its own connection,
account and login; each seller lists 10 items), then lets each client perform
``--ops`` operations back to back, and stops the services. Results go to
``--out`` (default ``perf-results/``): ``results.json``, ``results.csv`` and
three PNG charts.

The operation mix (percent of each client's operations, drawn at random with a
seed per client):

* seller: RegisterItemForSale 5, ChangeItemPrice 25, UpdateUnitsForSale 15
  (takes away one unit), DisplayItemsForSale 25, GetSellerRating 30.
* buyer: SearchItemsForSale 25 (a random category of 10, half the time with 1-2
  keywords, limit 20), GetItem 15 (an item seen in a search or listed at setup),
  AddItemToCart 15 (1-2 units of an item from the last search, else of one
  seen; one found sold out is forgotten), RemoveItemFromCart 5, DisplayCart 10,
  MakePurchase 8, ProvideFeedback 5, GetSellerRating 10, GetBuyerPurchases 7.
* An op the client's state rules out becomes what a user would do instead:
  remove or purchase with an empty cart -> AddItemToCart; feedback with nothing
  bought and unrated -> GetBuyerPurchases. After a purchase fails with
  ``conflict`` (an item sold out meanwhile), the buyer runs DisplayCart and
  removes the lines shown as unavailable, then carries on.

Items start with 10-100 units, so purchases succeed and popular items sell
out now and then. Outcomes are counted apart, as the contract's section 7 asks:
``ok`` replies are the throughput and the latency figures; ``conflict`` (sold
out, not enough units) is an expected outcome, reported as ``conflicts``;
``errors`` are failed operations, a transport failure or ``internal`` (must be
0); any other error code is reported as ``unexpected``.

The limit: in every run the same clients, with the same seeds and op mix, also
drive an echo chain built from the same ``Server`` and ``Client`` (``bench.echo``):
client -> relay -> echo, where the relay forwards every request over pooled
persistent connections and the echo answers every op with a small fixed
result. ``ratio_vs_echo`` is our throughput over the echo chain's.

The load generator runs in several processes (``--procs``, default one per
core), each with one thread and one socket (``TCP_NODELAY``) per client; its own
CPU use is reported, as is the services' CPU use when it started them.

``--soak SECONDS`` instead keeps the last scenario busy for that long and
reports, per minute (the last window may be shorter): ok ops/s, p50 and p99,
errors (must be 0), conflicts, the items and purchases added, and each
service's RSS at the end of the minute; ``last_vs_first_throughput`` is the
last minute's ops/s over the first's (section 8 wants >= 0.9). Written to
``soak.json`` and ``soak.png``.

``--large-market`` instead measures cost against data size (the contract's
section 8): fresh services are filled, outside the clock and through the
frontends (``bench.preload``), to 50,000 items, of which one seller owns
12,000, and one buyer with 3,000 purchases (2 items each); then one client
times each op, one request at a time, in round robin, ``--ops`` times (default
500): DisplayItemsForSale's first page and its last full page (``after``),
the same two pages of GetBuyerPurchases (pages of 100), SearchItemsForSale
with limit 20 in a category of 5,000 items, without and with 3 keywords
(~3,500 matches), GetItem, AddItemToCart, DisplayCart, RemoveItemFromCart.
The same ops on fresh services with a nearly empty market (500 items, 200 of
the seller, 200 purchases: still two full pages and full searches) are the
yardstick. ``--runs`` (default 3) repeats both with fresh services. Per op:
p50, p99 and mean latency (mean and std over runs), the ratio large / small,
and ``within_2x`` when both the p50 and the mean ratio are at most 2. Written
to ``large_market.json`` and ``latency_by_size.png``. With ``--quick``: 2,000
items (500 of the seller, 250 purchases), 50 samples, 1 run.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.charts import cdf_points, draw_charts, draw_size_chart, draw_soak_chart
from bench.deploy import Deployment, start_market
from bench.echo import start_echo_chain
from bench.loadgen import (BUYER_MIX, ITEMS_PER_SELLER, RUN_TIME_LIMIT, SELLER_MIX, LoadResult,
                           Tally, duration, mean_std, percentile, run_load, show)
from bench.preload import (LARGE, LINES_PER_PURCHASE, PAGE, PROBES, QUICK_LARGE, SEARCH_CATEGORY,
                           SEARCH_LIMIT, SEARCH_WORDS, SMALL, Shape, Timing, build_market, probe)
from bench.target import Target, counted, parse_target
from market.server import read_secret

DEFAULT_SCENARIOS = "1x1,10x10,100x100"
FULL = {"scenarios": DEFAULT_SCENARIOS, "ops": 1000, "runs": 10}
QUICK = {"scenarios": "1x1,4x4", "ops": 50, "runs": 1}
SIZE_FULL = {"ops": 500, "runs": 3}  # --large-market: samples of each op per run, runs
SIZE_QUICK = {"ops": 50, "runs": 1}
SOAK_WINDOW = 60.0  # seconds per line of the soak's figures


def parse_scenarios(text: str) -> list[tuple[int, int]]:
    """'1x1,10x10' -> [(buyers, sellers), ...]."""
    scenarios = []
    for part in text.split(","):
        buyers, _, sellers = part.strip().partition("x")
        if not (buyers.isdigit() and sellers.isdigit()) or int(buyers) + int(sellers) == 0:
            raise argparse.ArgumentTypeError(f"expected BUYERSxSELLERS, got {part!r}")
        scenarios.append((int(buyers), int(sellers)))
    return scenarios


class Progress:
    """Where the benchmark is ("scenario 2 of 3 (10x10), run 4 of 10") and about how long
    it has left, from the client operations done so far and the time they took."""

    def __init__(self, scenarios: list[tuple[int, int]], runs: int, ops: int) -> None:
        self.scenarios = scenarios
        self.runs = runs
        self.total = sum(2 * (b + s) * ops * runs for b, s in scenarios)  # ours and the echo's
        self.done = 0
        self.started = time.monotonic()

    def label(self, index: int, run: int) -> str:
        buyers, sellers = self.scenarios[index]
        return (f"scenario {index + 1} of {len(self.scenarios)} ({buyers}x{sellers}), "
                f"run {run} of {self.runs}")

    def advance(self, operations: int) -> str:
        """Count ``operations`` as done; the time left in all, as text."""
        self.done += operations
        if self.done >= self.total:
            return "all runs done"
        elapsed = time.monotonic() - self.started
        return f"{duration(elapsed * (self.total - self.done) / self.done)} left in all"


def run_scenario(args: argparse.Namespace, index: int, echo: Deployment, target: Target | None,
                 progress: Progress) -> dict:
    buyers, sellers = args.scenarios[index]
    name = f"{buyers}x{sellers}"
    ours: list[LoadResult] = []
    theirs: list[LoadResult] = []
    for run in range(1, args.runs + 1):
        label = progress.label(index, run)
        seed = f"{name}-{run}"
        market = None
        if target is None:
            market = start_market(args.out / "logs", args.data_dir)
        try:
            ours.append(run_load(target.addresses if target else market.addresses, buyers,
                                 sellers, args.procs, args.ops, RUN_TIME_LIMIT,
                                 f"{label}, marketplace", seed, market,
                                 take_stats=target.stats if target else None,
                                 withdraw=target is not None))
        finally:
            if market:
                market.stop()
        theirs.append(run_load(echo.addresses, buyers, sellers, args.procs, args.ops,
                               RUN_TIME_LIMIT, f"{label}, echo chain", seed, echo))
        left = progress.advance(2 * (buyers + sellers) * args.ops)
        a, b = ours[-1].figures(), theirs[-1].figures()
        show(f"{label}: {a['throughput_ops']:,.0f} ok ops/s, p50 {a['p50_ms']:.2f} ms, "
             f"p99 {a['p99_ms']:.2f} ms, errors {a['errors']}, conflicts {a['conflicts']}; "
             f"echo chain {b['throughput_ops']:,.0f} ops/s; {left}")
    return summarize(args, buyers, sellers, ours, theirs)


def summarize(args: argparse.Namespace, buyers: int, sellers: int, ours: list[LoadResult],
              theirs: list[LoadResult]) -> dict:
    runs = [r.figures() for r in ours]
    echo_runs = [r.figures() for r in theirs]
    row: dict[str, Any] = {"scenario": f"{buyers}x{sellers}", "buyers": buyers,
                           "sellers": sellers, "runs": len(runs),
                           "ops_per_client": args.ops}
    for key in ("avg_ms", "p50_ms", "p95_ms", "p99_ms", "throughput_ops"):
        row[key], row[f"{key}_std"] = mean_std([r[key] for r in runs])
    for key in ("throughput_ops", "avg_ms", "p50_ms", "p99_ms"):
        row[f"echo_{key}"], row[f"echo_{key}_std"] = mean_std([r[key] for r in echo_runs])
    row["ratio_vs_echo"] = (row["throughput_ops"] / row["echo_throughput_ops"]
                            if row["echo_throughput_ops"] else 0.0)
    tally = Tally()
    for result in ours:
        tally.add(result.tally)
    row["errors"] = sum(tally.errors.values())
    row["unexpected"] = sum(tally.unexpected.values())
    row["conflicts"] = sum(tally.conflicts.values())
    row["echo_errors"] = sum(r["errors"] + r["unexpected"] for r in echo_runs)
    row["per_op_avg_ms"] = {op: 1000 * statistics.fmean(values)
                            for op, values in sorted(tally.latencies.items())}
    row["per_op_ok"] = {op: len(values) for op, values in sorted(tally.latencies.items())}
    row["conflicts_by_op"] = dict(sorted(tally.conflicts.items()))
    row["errors_by_op"] = {f"{op}:{kind}": n for (op, kind), n in sorted(tally.errors.items())}
    row["unexpected_by_op"] = {f"{op}:{code}": n
                               for (op, code), n in sorted(tally.unexpected.items())}
    cores = os.cpu_count() or 1
    generator = [100 * r["generator_cpu_s"] / r["wall_s"] for r in runs if r["wall_s"]]
    row["generator_cpu_pct_of_core"], _ = mean_std(generator)
    row["generator_cpu_pct_of_machine"] = row["generator_cpu_pct_of_core"] / cores
    measured = [r for r in runs if r["services_cpu_s"] is not None and r["wall_s"]]
    row["services_cpu_pct_of_core"] = {
        name: mean_std([100 * r["services_cpu_s"][name] / r["wall_s"] for r in measured])[0]
        for name in (measured[0]["services_cpu_s"] if measured else ())}
    row["services_cpu_pct_of_machine"] = (sum(row["services_cpu_pct_of_core"].values()) / cores
                                          if measured else None)
    row.update(cpu_per_op(runs, "services"))
    row.update(cpu_per_op(echo_runs, "echo"))
    total, echo_total = row["services_cpu_us_per_op_total"], row["echo_cpu_us_per_op_total"]
    row["cpu_per_op_vs_echo"] = total / echo_total if total is not None and echo_total else None
    row["service_stats_counted"] = stats_counted(runs)
    row["withdrawn"] = ({key: sum(r["withdrawn"][key] for r in runs)
                         for key in ("items", "failed")} if runs[0]["withdrawn"] else None)
    row["cdf_ms"] = cdf_points(sorted(x for r in ours for x in r.latencies))
    row["echo_cdf_ms"] = cdf_points(sorted(x for r in theirs for x in r.latencies))
    row["per_run"] = runs
    row["echo_per_run"] = echo_runs
    return row


def cpu_per_op(runs: list[dict], who: str) -> dict[str, Any]:
    """CPU microseconds each service spent per ok operation in the timed part of each run
    (from /proc/PID/stat, set-up excluded), mean and std over the runs, and their sum;
    None where the services were not ours to measure (``--target``)."""
    measured = [r for r in runs if r["services_cpu_s"] is not None and r["ok"]]
    if not measured:
        return {f"{who}_cpu_us_per_op": None, f"{who}_cpu_us_per_op_std": None,
                f"{who}_cpu_us_per_op_total": None, f"{who}_cpu_us_per_op_total_std": None}
    per_run = [{name: 1e6 * spent / r["ok"] for name, spent in r["services_cpu_s"].items()}
               for r in measured]
    names = list(per_run[0])
    figures = {name: mean_std([run[name] for run in per_run]) for name in names}
    total, total_std = mean_std([sum(run.values()) for run in per_run])
    return {f"{who}_cpu_us_per_op": {name: mean for name, (mean, _) in figures.items()},
            f"{who}_cpu_us_per_op_std": {name: std for name, (_, std) in figures.items()},
            f"{who}_cpu_us_per_op_total": total, f"{who}_cpu_us_per_op_total_std": total_std}


def stats_counted(runs: list[dict]) -> dict[str, Any] | None:
    """With ``--target``: per service, what its ``Stats`` counted over the timed parts
    of all runs (requests per outcome, from all its clients), or why not available."""
    if not runs or runs[0]["service_stats"] is None:
        return None
    summary: dict[str, Any] = {}
    for where in runs[0]["service_stats"]["after"]:
        pairs = [(run["service_stats"]["before"][where], run["service_stats"]["after"][where])
                 for run in runs]
        counts = [counted(before, after) for before, after in pairs]
        if None in counts:
            before, after = pairs[counts.index(None)]
            summary[where] = {"available": False,
                              "reason": after.get("reason") or before.get("reason")}
            continue
        total: Counter = Counter()
        for outcomes in counts:
            total.update(outcomes)
        summary[where] = {"available": True, "service": pairs[-1][1].get("service"),
                          "outcomes": dict(total)}
    return summary


def machine() -> dict:
    info = {"cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.processor(),
            "load_average_1min": round(os.getloadavg()[0], 2)}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            models = [line.split(":", 1)[1].strip() for line in cpuinfo
                      if line.startswith("model name")]
        info["cpu_model"] = models[0] if models else ""
    except OSError:
        pass
    return info


CSV_FIELDS = ["scenario", "buyers", "sellers", "runs", "ops_per_client", "avg_ms", "avg_ms_std",
              "p50_ms", "p50_ms_std", "p95_ms", "p95_ms_std", "p99_ms", "p99_ms_std",
              "throughput_ops", "throughput_ops_std", "errors", "unexpected", "conflicts",
              "echo_throughput_ops", "echo_throughput_ops_std", "ratio_vs_echo",
              "generator_cpu_pct_of_core", "generator_cpu_pct_of_machine",
              "services_cpu_pct_of_machine", "services_cpu_us_per_op_total",
              "services_cpu_us_per_op_total_std", "echo_cpu_us_per_op_total",
              "echo_cpu_us_per_op_total_std", "cpu_per_op_vs_echo"]


def write_results(out: Path, report: dict) -> None:
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in report["scenarios"]:
            writer.writerow({k: round(v, 3) if isinstance(v, float) else v
                             for k, v in row.items()})


def spread(mean: float, std: float, runs: int, digits: int = 0) -> str:
    """'2,319 ± 85' over two runs or more; '2,319' from one (one run has no spread)."""
    text = f"{mean:,.{digits}f}"
    return f"{text} ± {std:,.{digits}f}" if runs > 1 else text


def print_table(rows: list[dict]) -> None:
    print(f"{'scenario':>9} {'avg ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'ok ops/s':>15} {'errors':>6} {'conflicts':>9} {'echo ops/s':>15} {'ratio':>6}")
    for r in rows:
        runs = r["runs"]
        print(f"{r['scenario']:>9} {r['avg_ms']:8.2f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {spread(r['throughput_ops'], r['throughput_ops_std'], runs):>15}"
              f" {r['errors'] + r['unexpected']:>6} {r['conflicts']:>9} "
              f"{spread(r['echo_throughput_ops'], r['echo_throughput_ops_std'], runs):>15} "
              f"{r['ratio_vs_echo']:6.2f}")
    runs = {r["runs"] for r in rows}
    print("1 run per scenario: no spread" if runs == {1} else
          "mean over runs; ± is the standard deviation over the runs")
    print_cpu(rows)
    print_stats(rows)


def print_cpu(rows: list[dict]) -> None:
    """CPU per ok operation of each service beside the echo chain's."""
    names = next((list(r["services_cpu_us_per_op"]) for r in rows
                  if r["services_cpu_us_per_op"]), [])
    echo_names = next((list(r["echo_cpu_us_per_op"]) for r in rows
                       if r["echo_cpu_us_per_op"]), [])
    print("\nCPU per ok operation, µs (each process's /proc/PID/stat over the timed part, "
          "set-up excluded)")
    if not names:
        print("(the marketplace's services were not started by this run: not measured)")
    print(f"{'scenario':>9} " + "".join(f"{name:>18}" for name in names)
          + f"{'services':>16} " + "".join(f"{name:>7}" for name in echo_names)
          + f"{'echo chain':>14} {'ratio':>6}")
    for r in rows:
        runs = r["runs"]
        ours = "".join(f"{r['services_cpu_us_per_op'][name]:18.0f}" for name in names)
        total = (spread(r["services_cpu_us_per_op_total"],
                        r["services_cpu_us_per_op_total_std"], runs)
                 if names else "-")
        echo = "".join(f"{(r['echo_cpu_us_per_op'] or {}).get(name, 0):7.0f}"
                       for name in echo_names)
        echo_total = (spread(r["echo_cpu_us_per_op_total"], r["echo_cpu_us_per_op_total_std"],
                             runs) if r["echo_cpu_us_per_op"] else "-")
        ratio_text = f"{r['cpu_per_op_vs_echo']:6.2f}" if r["cpu_per_op_vs_echo"] else "     -"
        print(f"{r['scenario']:>9} {ours}{total:>16} {echo}{echo_total:>14} {ratio_text}")


def print_stats(rows: list[dict]) -> None:
    """With --target: the items taken off sale afterwards, and what each service's Stats
    counted during the timed parts."""
    for r in rows:
        if r["withdrawn"]:
            print(f"\n{r['scenario']}: afterwards its sellers took {r['withdrawn']['items']:,} "
                  f"items off sale ({r['withdrawn']['failed']} could not be)")
        if r["service_stats_counted"] is None:
            continue
        print(f"\n{r['scenario']}: requests each service counted in Stats during the timed "
              "parts (from all its clients)")
        for where, entry in r["service_stats_counted"].items():
            if entry["available"]:
                outcomes = ", ".join(f"{key} {n:,}" for key, n in sorted(entry["outcomes"].items()))
                print(f"  {entry['service'] or '?'} {where}: {outcomes or 'nothing'}")
            else:
                print(f"  {where}: Stats not available ({entry['reason']})")


def benchmark(args: argparse.Namespace, target: Target | None) -> dict:
    shutil.rmtree(args.out / "logs", ignore_errors=True)
    host = machine()  # before the load, so the load average shows what else was running
    echo = start_echo_chain(args.out / "logs")
    progress = Progress(args.scenarios, args.runs, args.ops)
    try:
        rows = [run_scenario(args, index, echo, target, progress)
                for index in range(len(args.scenarios))]
    finally:
        echo.stop()
    return {"machine": {**host, "generator_processes": args.procs},
            "config": {"command": " ".join(["python3", "performance.py", *sys.argv[1:]]),
                       "runs": args.runs, "ops_per_client": args.ops,
                       "target": args.target, "target_dbs": args.target_dbs,
                       "fresh_state_per_run": target is None,
                       "data_dir": str(args.data_dir) if args.data_dir else None,
                       "seller_mix": SELLER_MIX, "buyer_mix": BUYER_MIX},
            "scenarios": rows}


def soak(args: argparse.Namespace, target: Target | None) -> dict:
    """Steady load of the last scenario for ``args.soak`` seconds, with figures per full
    ``SOAK_WINDOW`` (a shorter tail apart) and each service's RSS at the end of each."""
    buyers, sellers = args.scenarios[-1]
    market = None if target else start_market(args.out / "logs", args.data_dir)
    samples: list[dict] = []

    def sample(elapsed: float) -> None:
        if market and elapsed >= len(samples) * SOAK_WINDOW:
            samples.append({"t_s": round(elapsed, 1), "rss_kb": market.rss_kb()})

    try:
        result = run_load(target.addresses if target else market.addresses, buyers, sellers,
                          args.procs, None, args.soak, f"soak {buyers}x{sellers}", "soak",
                          market, sample, SOAK_WINDOW, target.stats if target else None,
                          withdraw=target is not None)
        if market:
            samples.append({"t_s": round(result.wall_s, 1), "rss_kb": market.rss_kb()})
    finally:
        if market:
            market.stop()
    windows, tail = result.window_figures(SOAK_WINDOW, args.soak)
    items, purchases = sellers * ITEMS_PER_SELLER, 0
    for window in windows + ([tail] if tail else []):
        items += window["items_added"]
        purchases += window["purchases_added"]
        window["items_total"], window["purchases_total"] = items, purchases
        end = window["start_s"] + window["seconds"]
        window["rss_kb"] = next((s["rss_kb"] for s in samples if s["t_s"] >= end - 1),
                                samples[-1]["rss_kb"]) if samples else None
    start, last = (samples[0]["rss_kb"], samples[-1]["rss_kb"]) if samples else (None, None)
    first_ops = windows[0]["throughput_ops"]
    figures = result.figures()
    return {"machine": machine(), "scenario": f"{buyers}x{sellers}", "seconds": args.soak,
            "rss_kb_start": start, "rss_kb_end": last, "rss_samples": samples,
            "rss_growth_kb": {name: last[name] - start[name] for name in last} if samples else None,
            "data_kept": {"accounts": buyers + sellers, "sessions": buyers + sellers,
                          "items": items, "purchases": purchases},
            "window_s": SOAK_WINDOW, "windows": windows, "tail": tail,
            "last_vs_first_throughput": (windows[-1]["throughput_ops"] / first_ops
                                         if len(windows) > 1 and first_ops else None),
            "service_stats_counted": stats_counted([figures]), **figures}


def print_soak(report: dict) -> None:
    names = list(report["rss_kb_start"] or ())
    print(f"{'minute':>6} {'ok ops/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'conflicts':>9} {'items':>7} {'purchases':>9}  RSS MB: {', '.join(names)}")
    tail = report["tail"]
    for w in report["windows"] + ([tail] if tail else []):
        rss = "  ".join(f"{w['rss_kb'][name] / 1024:6.1f}" for name in names)
        minute = "tail" if w is tail else w["window"] + 1
        print(f"{minute:>6} {w['throughput_ops']:9,.0f} {w['p50_ms']:7.1f} "
              f"{w['p99_ms']:7.1f} {w['errors'] + w['unexpected']:>6} {w['conflicts']:>9} "
              f"{w['items_total']:>7,} {w['purchases_total']:>9,}  {rss}")
    if tail:
        print(f"tail: the last {tail['seconds']:g} s, not a full minute (not compared)")


def large_market(args: argparse.Namespace) -> dict:
    """Per-op latency on a large market beside a nearly empty one (see the module doc)."""
    host = machine()
    shapes = [SMALL, QUICK_LARGE if args.quick else LARGE]
    runs: dict[str, list[dict]] = {shape.name: [] for shape in shapes}
    for run in range(1, args.runs + 1):
        for shape in shapes:
            runs[shape.name].append(measure_market(args, shape, f"run {run}/{args.runs}"))
    rows = []
    for label in PROBES:
        row: dict[str, Any] = {"op": label}
        for shape in shapes:
            per_run = [r["ops"][label] for r in runs[shape.name]]
            stats: dict[str, Any] = {}
            for key in ("p50_ms", "p99_ms", "mean_ms"):
                stats[key], stats[f"{key}_std"] = mean_std([r[key] for r in per_run])
            stats["samples"] = sum(r["samples"] for r in per_run)
            stats["failures"] = sum(sum(r["failures"].values()) for r in per_run)
            stats["entries"] = per_run[0]["entries"]
            stats["reply_bytes"] = per_run[0]["reply_bytes"]
            row[shape.name] = stats
        for key in ("p50_ms", "p99_ms", "mean_ms"):
            small = row["small"][key]
            row[f"ratio_{key[:-3]}"] = row["large"][key] / small if small else None
        row["within_2x"] = (row["large"]["failures"] == 0 and row["small"]["failures"] == 0
                            and all(row[key] is not None and row[key] <= 2
                                    for key in ("ratio_p50", "ratio_mean")))
        rows.append(row)
    return {"machine": host,
            "config": {"command": " ".join(["python3", "performance.py", *sys.argv[1:]]),
                       "runs": args.runs, "samples_per_op_per_run": args.ops,
                       "markets": {shape.name: vars(shape) for shape in shapes},
                       "lines_per_purchase": LINES_PER_PURCHASE, "page_limit": PAGE,
                       "search": {"category": SEARCH_CATEGORY, "limit": SEARCH_LIMIT,
                                  "keywords": SEARCH_WORDS},
                       "data_dir": str(args.data_dir) if args.data_dir else None,
                       "within_2x_means": "p50 and mean ratios large / small <= 2, no failures"},
            "markets": {name: {"per_run": per_run} for name, per_run in runs.items()},
            "ops": rows, "all_within_2x": all(row["within_2x"] for row in rows)}


def measure_market(args: argparse.Namespace, shape: Shape, label: str) -> dict:
    """Fresh services filled to ``shape``, then every probe timed ``args.ops`` times."""
    market = start_market(args.out / "logs", args.data_dir)
    try:
        show(f"{label}: building the {shape.name} market: {shape.items:,} items "
             f"({shape.seller_items:,} of one seller), {shape.purchases:,} purchases of one buyer")
        built = build_market(market.addresses, shape, f"{shape.name}-{label}")
        rss = market.rss_kb()
        steps = built.seconds
        show(f"{label}: built in {sum(steps.values()):.1f} s "
             f"(accounts {steps['accounts_s']:.1f} s, "
             f"items {steps['items_s']:.1f} s = {shape.items / steps['items_s']:,.0f}/s, "
             f"purchases {steps['purchases_s']:.1f} s = "
             f"{shape.purchases / steps['purchases_s']:,.0f}/s); timing {len(PROBES)} ops")
        timings = probe(market.addresses, built, args.ops, f"{shape.name}-{label}")
    finally:
        market.stop()
    return {"preload_s": steps, "rss_kb_after_build": rss,
            "ops": {name: timing_figures(timing) for name, timing in timings.items()}}


def timing_figures(timing: Timing) -> dict:
    lat = sorted(timing.latencies)
    return {"p50_ms": 1000 * percentile(lat, 0.50), "p99_ms": 1000 * percentile(lat, 0.99),
            "mean_ms": 1000 * statistics.fmean(lat) if lat else 0.0, "samples": len(lat),
            "failures": dict(timing.failures), "entries": timing.entries,
            "reply_bytes": timing.reply_bytes}


def print_sizes(report: dict) -> None:
    markets = report["config"]["markets"]
    print(f"per-op latency, ms: small market ({markets['small']['items']:,} items) vs large "
          f"({markets['large']['items']:,} items); ratio = large / small")
    print(f"{'op':<31} {'entries':>7} | {'p50 small':>9} {'large':>7} {'ratio':>5} | "
          f"{'p99 small':>9} {'large':>7} {'ratio':>5} | {'mean small':>10} {'large':>7} "
          f"{'ratio':>5} | within 2x")
    for row in report["ops"]:
        small, large = row["small"], row["large"]
        cells = [f"{small[key]:9.3f} {large[key]:7.3f} {ratio(row['ratio_' + key[:-3]])}"
                 for key in ("p50_ms", "p99_ms")]
        failures = small["failures"] + large["failures"]
        print(f"{row['op']:<31} {small['entries']:>3}/{large['entries']:<3} | {cells[0]} | "
              f"{cells[1]} | {small['mean_ms']:10.3f} {large['mean_ms']:7.3f} "
              f"{ratio(row['ratio_mean'])} | {'yes' if row['within_2x'] else 'NO'}"
              + (f" ({failures} failed)" if failures else ""))
    print("every op within 2x of the nearly empty market" if report["all_within_2x"]
          else "NOT every op is within 2x of the nearly empty market")


def ratio(value: float | None) -> str:
    return f"{value:5.2f}" if value is not None else "    -"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark the marketplace against the echo chain of its own stack.",
        epilog="On a live market (--target) the benchmark reads and writes only what it "
               "creates: new accounts of its own (bench-<random>-s0, -b0, ...; a name already "
               "taken stops the run), items its sellers list, purchases and votes of its "
               "buyers on those items only (search results showing other items are "
               "filtered out; nothing else is looked at, carted, bought or rated). It "
               "leaves behind in that market: those accounts and sessions, their items "
               "(after each run its sellers take the units left off sale, so the items no "
               "longer show in searches), and their purchases and votes.")
    parser.add_argument("--runs", type=int,
                        help="runs per scenario (default 10; --large-market: 3)")
    parser.add_argument("--ops", type=int, help="operations per client (default 1000; "
                                                "--large-market: timed samples per op, 500)")
    parser.add_argument("--scenarios", type=parse_scenarios,
                        help=f"BUYERSxSELLERS,... (default {DEFAULT_SCENARIOS})")
    parser.add_argument("--out", type=Path, default=Path("perf-results"),
                        help="directory for results and charts (default perf-results)")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds for CI: scenarios 1x1,4x4, 50 ops, 1 run "
                             "(--large-market: 2,000 items, 50 samples, 1 run)")
    parser.add_argument("--soak", type=float, metavar="SECONDS",
                        help="instead: steady load of the last scenario, with ok ops/s, p99, "
                             "errors and each service's RSS per full minute, a shorter tail "
                             "apart (at least 60; soak.json, soak.png)")
    parser.add_argument("--large-market", action="store_true",
                        help="instead: per-op latency on fresh services holding 50,000 items "
                             "(one seller 12,000) and a buyer with 3,000 purchases, beside a "
                             "nearly empty market (large_market.json, latency_by_size.png)")
    parser.add_argument("--target", metavar="SELLER_HOST:PORT[+...],BUYER_HOST:PORT[+...]",
                        help="use these running frontends instead of starting services; "
                             "several of a role joined by '+' share its clients in turn. It "
                             "touches only what it creates itself (see below); their Stats "
                             "before and after each run go into the results")
    parser.add_argument("--target-dbs", metavar="HOST:PORT[,HOST:PORT]",
                        help="with --target: databases to take Stats of too (nothing else is "
                             "sent to them)")
    parser.add_argument("--secret-file", type=Path,
                        help="with --target-dbs: the deployment's secret, if the databases "
                             "ask for one")
    parser.add_argument("--data-dir", type=Path,
                        help="start the databases with --data-dir in a fresh directory under "
                             "this one (removed after each run)")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2,
                        help="load generator processes (default: one per core)")
    args = parser.parse_args(argv)
    if args.large_market and (args.soak or args.target):
        parser.error("--large-market starts its own services and cannot be combined with "
                     "--soak or --target")
    if args.soak is not None and args.soak < SOAK_WINDOW:
        parser.error(f"--soak reports per full minute: give at least {SOAK_WINDOW:g} seconds")
    if (args.target_dbs or args.secret_file) and not args.target:
        parser.error("--target-dbs and --secret-file go with --target")
    if args.large_market:
        defaults = SIZE_QUICK if args.quick else SIZE_FULL
    else:
        defaults = QUICK if args.quick else FULL
    args.scenarios = args.scenarios or parse_scenarios(defaults.get("scenarios",
                                                                    DEFAULT_SCENARIOS))
    args.ops = args.ops or defaults["ops"]
    args.runs = args.runs or defaults["runs"]
    target = (parse_target(args.target, args.target_dbs,
                           read_secret(str(args.secret_file or "")))
              if args.target else None)
    if importlib.util.find_spec("matplotlib") is None:  # say so now, not after the run
        raise RuntimeError("matplotlib is missing: run ./run_tests.sh once and use "
                           ".venv/bin/python performance.py, or pip install -r requirements.txt")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.soak:
        report = soak(args, target)
        (args.out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
        chart = draw_soak_chart(args.out, report)
        print_soak(report)
        print(json.dumps({k: report[k] for k in (
            "scenario", "seconds", "ok", "throughput_ops", "p50_ms", "p99_ms", "errors",
            "unexpected", "last_vs_first_throughput", "rss_kb_start", "rss_kb_end",
            "data_kept", "service_stats_counted", "withdrawn")}, indent=2))
        print(f"wrote {args.out}/soak.json, {chart}")
        return
    if args.large_market:
        report = large_market(args)
        (args.out / "large_market.json").write_text(json.dumps(report, indent=2) + "\n")
        chart = draw_size_chart(args.out, report)
        print_sizes(report)
        print(f"wrote {args.out}/large_market.json, {chart}")
        return
    report = benchmark(args, target)
    write_results(args.out, report)
    charts = draw_charts(args.out, report)
    print_table(report["scenarios"])
    print(f"wrote {args.out}/results.json, results.csv, " + ", ".join(charts))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as failure:
        sys.exit(f"performance.py: {failure}")
