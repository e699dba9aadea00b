"""What the benchmark reports: each scenario's summary over its runs (mean and std,
CPU per ok operation, what the services' Stats counted), results.json and .csv, and
the tables it prints for a benchmark, a soak and the data-size scenario."""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from bench.charts import cdf_points, cpu_sources_text, cpu_text
from bench.deploy import below_resolution
from bench.loadgen import LoadResult, Tally, mean_std, percentile
from bench.preload import Timing
from bench.target import counted

# The ops of the benchmark's mix that change the data: with --replicated, each is
# acknowledged only once etcd committed it (the write path).
WRITE_OPS = ("RegisterItemForSale", "ChangeItemPrice", "UpdateUnitsForSale", "AddItemToCart",
             "RemoveItemFromCart", "MakePurchase", "ProvideFeedback")


def market_text(config: dict) -> str:
    """Which market the figures are of: single-process databases or replicated ones."""
    if config.get("target"):
        return f"market: the running frontends {config['target']} (--target)"
    replicated = config.get("replicated")
    tls = " over TLS" if config.get("tls") else ""
    if replicated:
        return (f"market: replicated databases{tls} ({replicated['processes_per_database']} "
                f"processes of each, one active, on a local etcd cluster of "
                f"{replicated['etcd_members']} members; --replicated)")
    where = "a data directory" if config.get("data_dir") else "memory"
    return f"market: one process per database{tls}, its data in {where}"


def summarize(ops: int, buyers: int, sellers: int, ours: list[LoadResult],
              theirs: list[LoadResult]) -> dict:
    """One scenario's row: the marketplace's runs (``ours``) beside the echo chain's."""
    runs = [r.figures() for r in ours]
    echo_runs = [r.figures() for r in theirs]
    row: dict[str, Any] = {"scenario": f"{buyers}x{sellers}", "buyers": buyers,
                           "sellers": sellers, "runs": len(runs),
                           "ops_per_client": ops}
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
    row["per_op_p99_ms"] = {op: 1000 * percentile(sorted(values), 0.99)
                            for op, values in sorted(tally.latencies.items())}
    writes = sorted(x for op, values in tally.latencies.items() if op in WRITE_OPS
                    for x in values)
    row["write_ops"] = len(writes)
    row["write_p50_ms"] = 1000 * percentile(writes, 0.50)
    row["write_p99_ms"] = 1000 * percentile(writes, 0.99)
    row["per_op_ok"] = {op: len(values) for op, values in sorted(tally.latencies.items())}
    row["conflicts_by_op"] = dict(sorted(tally.conflicts.items()))
    row["errors_by_op"] = {f"{op}:{kind}": n for (op, kind), n in sorted(tally.errors.items())}
    row["unexpected_by_op"] = {f"{op}:{code}": n
                               for (op, code), n in sorted(tally.unexpected.items())}
    row.update(cpu_figures(runs, echo_runs))
    row["service_stats_counted"] = stats_counted(runs)
    row["withdrawn"] = ({key: sum(r["withdrawn"][key] for r in runs)
                         for key in ("items", "failed")} if runs[0]["withdrawn"] else None)
    row["cdf_ms"] = cdf_points(sorted(x for r in ours for x in r.latencies))
    row["echo_cdf_ms"] = cdf_points(sorted(x for r in theirs for x in r.latencies))
    row["per_run"] = runs
    row["echo_per_run"] = echo_runs
    return row


def cpu_figures(runs: list[dict], echo_runs: list[dict]) -> dict[str, Any]:
    """A scenario's CPU figures: the generator's and each service's share of a core, and
    CPU per ok operation of the services and of the echo chain, with their ratio."""
    cores = os.cpu_count() or 1
    row: dict[str, Any] = {}
    generator = [100 * r["generator_cpu_s"] / r["wall_s"] for r in runs if r["wall_s"]]
    row["generator_cpu_pct_of_core"], _ = mean_std(generator)
    row["generator_cpu_pct_of_machine"] = row["generator_cpu_pct_of_core"] / cores
    measured = [r for r in runs if r["services_cpu_s"] is not None and r["wall_s"]]
    row["services_cpu_pct_of_core"] = {
        name: mean_std([100 * (r["services_cpu_s"][name] or 0.0) / r["wall_s"]
                        for r in measured])[0]
        for name in (measured[0]["services_cpu_s"] if measured else ())}
    row["services_cpu_pct_of_machine"] = (sum(row["services_cpu_pct_of_core"].values()) / cores
                                          if measured else None)
    row.update(cpu_per_op(runs, "services"))
    row.update(cpu_per_op(echo_runs, "echo"))
    row["cpu_per_op_vs_echo"] = cpu_ratio(row)
    return row


def cpu_per_op(runs: list[dict], who: str) -> dict[str, Any]:
    """CPU microseconds each service spent per ok operation in the timed part of each run
    (set-up excluded), mean and std over the runs, and their sum, with how finely each was
    read (``cpu_resolution``); None where the services were not ours to measure
    (``--target``). A process whose CPU could not be read counts 0 and is said to be
    below resolution."""
    measured = [r for r in runs if r["services_cpu_s"] is not None and r["ok"]]
    if not measured:
        return {f"{who}_cpu_us_per_op": None, f"{who}_cpu_us_per_op_std": None,
                f"{who}_cpu_us_per_op_total": None, f"{who}_cpu_us_per_op_total_std": None,
                f"{who}_cpu_resolution": None}
    per_run = [{name: 1e6 * (spent or 0.0) / r["ok"]
                for name, spent in r["services_cpu_s"].items()} for r in measured]
    names = list(per_run[0])
    figures = {name: mean_std([run[name] for run in per_run]) for name in names}
    total, total_std = mean_std([sum(run.values()) for run in per_run])
    return {f"{who}_cpu_us_per_op": {name: mean for name, (mean, _) in figures.items()},
            f"{who}_cpu_us_per_op_std": {name: std for name, (_, std) in figures.items()},
            f"{who}_cpu_us_per_op_total": total, f"{who}_cpu_us_per_op_total_std": total_std,
            f"{who}_cpu_resolution": cpu_resolution(measured)}


UNREAD = {"source": "n/a", "resolution_s": None}  # a process whose CPU could not be read


def cpu_resolution(runs: list[dict]) -> dict[str, dict]:
    """Per process, how finely its CPU was read over ``runs``: the coarsest run's way
    (``source``: "stats", "schedstat", "ticks" or "n/a"; ``resolution_s``; and
    ``resolution_us_per_op``, that over the run's ok operations), and
    ``below_resolution``: whether it spent less than that in every run, so that its
    figure says only "less than this", not 0."""
    figures = {}
    for name in runs[0]["services_cpu_s"]:
        read = [((r.get("services_cpu_resolution") or {}).get(name) or UNREAD,
                 r["services_cpu_s"][name], r["ok"]) for r in runs]
        coarsest, _, ok = max(read, key=lambda entry: (
            math.inf if entry[0]["resolution_s"] is None
            else entry[0]["resolution_s"] / entry[2]))
        resolution = coarsest["resolution_s"]
        figures[name] = {"source": coarsest["source"], "resolution_s": resolution,
                         "resolution_us_per_op": (1e6 * resolution / ok
                                                  if resolution is not None else None),
                         "below_resolution": all(below_resolution(spent, way["resolution_s"])
                                                 for way, spent, _ in read)}
    return figures


def cpu_ratio(row: dict) -> float | None:
    """The services' CPU per ok operation over the echo chain's; None when either was
    not measured, the echo chain's is 0, or a process of either spent less than could
    be read (the ratio would mean nothing)."""
    total, echo_total = row["services_cpu_us_per_op_total"], row["echo_cpu_us_per_op_total"]
    if total is None or not echo_total:
        return None
    if any(way["below_resolution"] for who in ("services", "echo")
           for way in (row[f"{who}_cpu_resolution"] or {}).values()):
        return None
    return total / echo_total


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
              "write_p50_ms", "write_p99_ms",
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
    print("\nthe write ops (" + ", ".join(WRITE_OPS) + "), over all runs:")
    for r in rows:
        print(f"{r['scenario']:>9}  p50 {r['write_p50_ms']:.2f} ms, p99 {r['write_p99_ms']:.2f} "
              f"ms over {r['write_ops']:,} ok (all ops: p99 {r['p99_ms']:.2f} ms)")
    print_cpu(rows)
    print_stats(rows)


def print_cpu(rows: list[dict]) -> None:
    """CPU per ok operation of each service beside the echo chain's; a figure below what
    could be read shows as such ("< 10 ms tick"), and then the ratio as "n/a"."""
    names = next((list(r["services_cpu_us_per_op"]) for r in rows
                  if r["services_cpu_us_per_op"]), [])
    echo_names = next((list(r["echo_cpu_us_per_op"]) for r in rows
                       if r["echo_cpu_us_per_op"]), [])
    print(f"\nCPU per ok operation, µs (each process over the timed part, set-up excluded; "
          f"{cpu_sources_text(rows)})")
    if not names:
        print("(the marketplace's services were not started by this run: not measured)")
    width = {name: max(18, len(name) + 2) for name in names}  # product_db_standby fits
    print(f"{'scenario':>9} " + "".join(f"{name:>{width[name]}}" for name in names)
          + f"{'services':>16} " + "".join(f"{name:>14}" for name in echo_names)
          + f"{'echo chain':>14} {'ratio':>6}")
    for r in rows:
        ours = "".join(f"{process_cpu_text(r, 'services', name):>{width[name]}}"
                       for name in names)
        total = (spread(r["services_cpu_us_per_op_total"],
                        r["services_cpu_us_per_op_total_std"], r["runs"])
                 if names else "-")
        echo = "".join(f"{process_cpu_text(r, 'echo', name):>14}" for name in echo_names)
        echo_total = (spread(r["echo_cpu_us_per_op_total"], r["echo_cpu_us_per_op_total_std"],
                             r["runs"]) if r["echo_cpu_us_per_op"] else "-")
        ratio_text = (f"{r['cpu_per_op_vs_echo']:6.2f}" if r["cpu_per_op_vs_echo"]
                      else "   n/a" if names and r["echo_cpu_us_per_op"] else "     -")
        print(f"{r['scenario']:>9} {ours}{total:>16} {echo}{echo_total:>14} {ratio_text}")


def process_cpu_text(row: dict, who: str, name: str) -> str:
    """One process's CPU per ok operation in ``row``, or what it was below."""
    value = (row[f"{who}_cpu_us_per_op"] or {}).get(name)
    way = (row[f"{who}_cpu_resolution"] or {}).get(name)
    return "-" if value is None else cpu_text(value, way)


def print_stats(rows: list[dict]) -> None:
    """With --target: the items taken off sale afterwards, and what each service's Stats
    counted during the timed parts."""
    for r in rows:
        if r["withdrawn"]:
            print(f"\n{r['scenario']}: afterwards its sellers took {r['withdrawn']['items']:,} "
                  f"items off sale ({r['withdrawn']['failed']} could not be)")
        if r["service_stats_counted"] is None:
            continue
        ok = sum(r["per_op_ok"].values())
        print(f"\n{r['scenario']}: requests each service counted in Stats during the timed "
              f"parts (from all its clients), and its ok requests per ok operation of the "
              f"benchmark ({ok:,})")
        for where, entry in r["service_stats_counted"].items():
            if entry["available"]:
                outcomes = entry["outcomes"]
                text = ", ".join(f"{key} {n:,}" for key, n in sorted(outcomes.items()))
                per_op = f"; {outcomes.get('ok', 0) / ok:.2f} per ok op" if ok else ""
                print(f"  {entry['service'] or '?'} {where}: {text or 'nothing'}{per_op}")
            else:
                print(f"  {where}: Stats not available ({entry['reason']})")


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
