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
drive an echo chain built from ``protocol.py``'s own ``Server`` and ``Client``:
client -> relay -> echo, where the relay forwards every request over pooled
persistent connections and the echo answers every op with a small fixed
result. ``ratio_vs_echo`` is our throughput over the echo chain's.

The load generator runs in several processes (``--procs``, default one per
core), each with one thread and one socket (``TCP_NODELAY``) per client; its own
CPU use is reported, as is the services' CPU use when it started them.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import random
import resource
import secrets
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

from protocol import Client, Peer, Service, json_safe, parse_address, serve, service_parser

ROOT = Path(__file__).resolve().parent
DEFAULT_SCENARIOS = "1x1,10x10,100x100"
QUICK = {"scenarios": "1x1,4x4", "ops": 50, "runs": 1}
RUN_TIME_LIMIT = 3600.0  # seconds one timed run may take before its clients give up
OP_TIMEOUT = 30.0  # seconds a client waits for one reply
START_TIMEOUT = 30.0  # seconds a service may take to print its ready line
RETRY_PAUSE = 0.1  # seconds a client waits after a transport failure before its next op
ITEMS_PER_SELLER = 10
CATEGORIES = 10
KEYWORDS = ("lamp", "desk", "chair", "book", "phone", "cable", "mug", "shoe", "bag", "watch")
CARD = {"card_name": "Bench Buyer", "card_number": "4111111111111111", "expiry": "12/99"}
PASSWORD = "bench-pw"

SELLER_MIX = {"RegisterItemForSale": 5, "ChangeItemPrice": 25, "UpdateUnitsForSale": 15,
              "DisplayItemsForSale": 25, "GetSellerRating": 30}
BUYER_MIX = {"SearchItemsForSale": 25, "GetItem": 15, "AddItemToCart": 15,
             "RemoveItemFromCart": 5, "DisplayCart": 10, "MakePurchase": 8,
             "ProvideFeedback": 5, "GetSellerRating": 10, "GetBuyerPurchases": 7}

# What the echo answers to every op: small, and enough for the clients' setup.
ECHO_RESULT = {"session": "echo", "seller_id": 1, "buyer_id": 1, "item_id": 1}


# -- the echo chain ---------------------------------------------------------

class EchoService(Service):
    """Answers every op at once with ``ECHO_RESULT``."""

    name = "echo"

    def dispatch(self, message: dict, peer: Peer | None = None) -> dict:
        return ECHO_RESULT


class RelayService(Service):
    """Forwards every request to the echo over pooled persistent connections."""

    name = "relay"

    def __init__(self, echo: Client) -> None:
        super().__init__()
        self.echo = echo

    def dispatch(self, message: dict, peer: Peer | None = None) -> dict:
        return self.echo.call(str(message.get("op")), json_safe(message.get("args")),
                              message.get("session"))


def serve_echo_chain_part(service: Service) -> None:
    """Serve on a free port of 127.0.0.1 with the services' usual settings."""
    parser = service_parser(f"The {service.name} of the echo chain.", "BENCH_ECHO", 0)
    serve(service, parser.parse_args(["--port", "0", "--log-level", "WARNING"]))


# -- one benchmark client ---------------------------------------------------

class Tally:
    """Outcomes of operations: ok latencies (seconds) per op, and the failures."""

    def __init__(self) -> None:
        self.latencies: dict[str, array] = {}
        self.conflicts: Counter = Counter()  # op -> count
        self.errors: Counter = Counter()  # (op, "transport" | "internal") -> count
        self.unexpected: Counter = Counter()  # (op, error code) -> count

    def add(self, other: "Tally") -> None:
        for op, values in other.latencies.items():
            self.latencies.setdefault(op, array("d")).extend(values)
        self.conflicts.update(other.conflicts)
        self.errors.update(other.errors)
        self.unexpected.update(other.unexpected)

    def ok_latencies(self) -> array:
        joined = array("d")
        for values in self.latencies.values():
            joined.extend(values)
        return joined


class BenchClient:
    """One user: its own socket, account and session; subclasses choose the ops."""

    role = ""
    mix: dict[str, int] = {}

    def __init__(self, address: tuple[str, int], username: str, seed: str) -> None:
        self.address = address
        self.username = username
        self.rng = random.Random(seed)
        self.session: str | None = None
        self.sock: socket.socket | None = None
        self.rfile: Any = None
        self.tally = Tally()
        self.ok_count = 0
        self.ended = 0.0  # time.monotonic() when the last operation finished
        self.ops_names = list(self.mix)
        self.weights = list(self.mix.values())

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=OP_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def close(self) -> None:
        if self.sock is not None:
            self.rfile.close()
            self.sock.close()
            self.sock = None

    def exchange(self, op: str, args: dict) -> dict:
        """Send one request and return the reply envelope (raises on transport failure)."""
        message = {"op": op, "args": args}
        if self.session is not None:
            message["session"] = self.session
        self.sock.sendall((json.dumps(message, separators=(",", ":")) + "\n").encode())
        line = self.rfile.readline()
        if not line.endswith(b"\n"):
            raise ConnectionError("the server closed the connection")
        return json.loads(line)

    def setup_call(self, op: str, **args: Any) -> dict:
        reply = self.exchange(op, args)
        if not reply.get("ok"):
            raise RuntimeError(f"{self.role} {self.username}: {op} failed: {reply.get('error')}")
        return reply["result"]

    def setup(self) -> dict:
        """Connect, create the account and log in (not timed); returns the login result."""
        self.connect()
        self.setup_call("CreateAccount", username=self.username, password=PASSWORD)
        login = self.setup_call("Login", username=self.username, password=PASSWORD)
        self.session = login["session"]
        return login

    def run(self, ops: int | None, stop_at: float) -> None:
        """Perform ``ops`` operations (or until ``stop_at`` when ``ops`` is None)."""
        done = 0
        while (ops is None or done < ops) and time.monotonic() < stop_at:
            done += 1
            op, args = self.next_op()
            started = time.perf_counter()
            try:
                if self.sock is None:
                    self.connect()
                reply = self.exchange(op, args)
            except (OSError, ValueError):
                self.tally.errors[(op, "transport")] += 1
                self.close()
                time.sleep(RETRY_PAUSE)
                continue
            elapsed = time.perf_counter() - started
            if reply.get("ok"):
                self.tally.latencies.setdefault(op, array("d")).append(elapsed)
                self.ok_count += 1
                self.on_ok(op, args, reply.get("result") or {})
                continue
            code = (reply.get("error") or {}).get("code")
            if code == "conflict":
                self.tally.conflicts[op] += 1
                self.on_conflict(op, args)
            elif code == "internal":
                self.tally.errors[(op, "internal")] += 1
            else:
                self.tally.unexpected[(op, str(code))] += 1
        self.ended = time.monotonic()
        self.close()

    def pick_op(self) -> str:
        return self.rng.choices(self.ops_names, self.weights)[0]

    def next_op(self) -> tuple[str, dict]:
        raise NotImplementedError

    def on_ok(self, op: str, args: dict, result: dict) -> None:
        """Learn from a successful reply."""

    def on_conflict(self, op: str, args: dict) -> None:
        """React to an expected ``conflict``."""


def new_item(rng: random.Random, number: int) -> dict:
    return {"name": f"item {number}", "category": rng.randrange(CATEGORIES),
            "keywords": rng.sample(KEYWORDS, rng.randint(1, 3)),
            "condition": rng.choice(("new", "used")), "price": rng.randint(100, 10_000) / 100,
            "quantity": rng.randint(10, 100)}


class SellerBench(BenchClient):
    role = "seller"
    mix = SELLER_MIX

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_ids: list[int] = []
        self.seller_id = 0

    def setup(self) -> dict:
        login = super().setup()
        self.seller_id = login["seller_id"]
        for number in range(ITEMS_PER_SELLER):
            item = new_item(self.rng, number)
            self.item_ids.append(self.setup_call("RegisterItemForSale", **item)["item_id"])
        return login

    def next_op(self) -> tuple[str, dict]:
        op = self.pick_op()
        if op == "RegisterItemForSale":
            return op, new_item(self.rng, len(self.item_ids))
        if op == "ChangeItemPrice":
            return op, {"item_id": self.rng.choice(self.item_ids),
                        "price": self.rng.randint(100, 10_000) / 100}
        if op == "UpdateUnitsForSale":
            return op, {"item_id": self.rng.choice(self.item_ids), "quantity": 1}
        return op, {}

    def on_ok(self, op: str, args: dict, result: dict) -> None:
        if op == "RegisterItemForSale":
            self.item_ids.append(result["item_id"])


class BuyerBench(BenchClient):
    role = "buyer"
    mix = BUYER_MIX

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.items: dict[int, int] = {}  # item_id -> seller_id, of items seen
        self.item_ids: list[int] = []  # the keys of ``items``, for random choice
        self.last_found: list[int] = []  # the items of the last search
        self.cart: dict[int, int] = {}  # item_id -> units, as this session's cart holds
        self.unrated: set[int] = set()  # bought and not rated yet
        self.rated: set[int] = set()
        self.check_cart = False  # a purchase failed: look at the cart next
        self.to_remove: list[int] = []  # unavailable cart lines to take out

    def learn(self, catalog: list[tuple[int, int]]) -> None:
        for item_id, seller_id in catalog:
            if item_id not in self.items:
                self.items[item_id] = seller_id
                self.item_ids.append(item_id)

    def forget(self, item_id: int) -> None:
        """Drop an item found sold out from the ones this buyer would pick."""
        if item_id in self.last_found:
            self.last_found.remove(item_id)
        if item_id in self.items:
            del self.items[item_id]
            self.item_ids.remove(item_id)

    def next_op(self) -> tuple[str, dict]:
        if self.to_remove:
            item_id = self.to_remove.pop()
            return "RemoveItemFromCart", {"item_id": item_id,
                                          "quantity": self.cart.get(item_id, 1)}
        if self.check_cart:
            return "DisplayCart", {}
        op = self.pick_op()
        if op in ("RemoveItemFromCart", "MakePurchase") and not self.cart:
            op = "AddItemToCart"
        if op == "ProvideFeedback" and not self.unrated:
            op = "GetBuyerPurchases"
        if op in ("GetItem", "AddItemToCart", "GetSellerRating") and not self.item_ids:
            op = "SearchItemsForSale"
        if op == "SearchItemsForSale":
            args: dict[str, Any] = {"category": self.rng.randrange(CATEGORIES), "limit": 20}
            if self.rng.random() < 0.5:
                args["keywords"] = self.rng.sample(KEYWORDS, self.rng.randint(1, 2))
            return op, args
        if op == "GetItem":
            return op, {"item_id": self.rng.choice(self.item_ids)}
        if op == "AddItemToCart":
            return op, {"item_id": self.rng.choice(self.last_found or self.item_ids),
                        "quantity": self.rng.randint(1, 2)}
        if op == "RemoveItemFromCart":
            item_id = self.rng.choice(list(self.cart))
            return op, {"item_id": item_id, "quantity": self.cart[item_id]}
        if op == "MakePurchase":
            return op, CARD
        if op == "ProvideFeedback":
            return op, {"item_id": self.rng.choice(sorted(self.unrated)),
                        "vote": self.rng.choice(("up", "up", "up", "down"))}
        if op == "GetSellerRating":
            return op, {"seller_id": self.items[self.rng.choice(self.item_ids)]}
        return op, {}

    def on_ok(self, op: str, args: dict, result: dict) -> None:
        if op == "SearchItemsForSale":
            found = [(item["item_id"], item["seller_id"]) for item in result.get("items", ())]
            self.learn(found)
            self.last_found = [item_id for item_id, _ in found]
        elif op == "AddItemToCart":
            self.cart[args["item_id"]] = self.cart.get(args["item_id"], 0) + args["quantity"]
        elif op == "RemoveItemFromCart":
            self.cart.pop(args["item_id"], None)
        elif op == "DisplayCart" and self.check_cart:
            self.check_cart = False
            self.to_remove = [line["item_id"] for line in result["cart"]["lines"]
                              if not line["available"]]
        elif op == "MakePurchase":
            self.unrated.update(item_id for item_id in self.cart if item_id not in self.rated)
            self.cart.clear()
        elif op == "ProvideFeedback":
            self.unrated.discard(args["item_id"])
            self.rated.add(args["item_id"])

    def on_conflict(self, op: str, args: dict) -> None:
        if op == "AddItemToCart" and len(self.item_ids) > 1:
            self.forget(args["item_id"])
        elif op == "MakePurchase":
            self.check_cart = True
        elif op == "ProvideFeedback":
            self.unrated.discard(args["item_id"])


# -- generator processes ----------------------------------------------------

def run_threads(tasks: list) -> None:
    """Run callables in threads, all at once; re-raise the first failure."""
    failures: list[BaseException] = []

    def guarded(task) -> None:
        try:
            task()
        except BaseException as exc:  # reported to the parent below
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(task,), daemon=True) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def worker_main(conn, specs: list[tuple[str, int]], addresses: dict[str, tuple[str, int]],
                tag: str, seed: str, ops: int | None, seconds: float, progress, slot: int) -> None:
    """One generator process: sets its clients up, then runs them on the parent's word.

    Talks to the parent over ``conn``: "sellers" -> catalog, ("buyers", catalog)
    -> "ready", "go" -> ("done", figures); any failure -> ("failed", text).
    """
    kinds = {"seller": SellerBench, "buyer": BuyerBench}
    clients = [kinds[role](addresses[role], f"{role[0]}{tag}-{index}", f"{seed}-{role}-{index}")
               for role, index in specs]
    sellers = [c for c in clients if isinstance(c, SellerBench)]
    buyers = [c for c in clients if isinstance(c, BuyerBench)]
    try:
        conn.recv()
        run_threads([c.setup for c in sellers])  # all at once: the frontends queue the hashing
        conn.send([(item_id, s.seller_id) for s in sellers for item_id in s.item_ids])
        _, catalog = conn.recv()
        for buyer in buyers:
            buyer.learn(catalog)
        run_threads([b.setup for b in buyers])
        conn.send("ready")
        conn.recv()
        finished = threading.Event()
        threading.Thread(target=report_progress, args=(clients, progress, slot, finished),
                         daemon=True).start()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        stop_at = started + seconds
        run_threads([lambda c=c: c.run(ops, stop_at) for c in clients])
        after = resource.getrusage(resource.RUSAGE_SELF)
        finished.set()
        progress[slot] = sum(c.ok_count for c in clients)
        tally = Tally()
        for client in clients:
            tally.add(client.tally)
        cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
        conn.send(("done", {"started": started, "ended": max(c.ended for c in clients),
                            "cpu_s": cpu, "tally": tally}))
    except BaseException:
        conn.send(("failed", traceback.format_exc()))
    finally:
        for client in clients:
            client.close()


def report_progress(clients: list[BenchClient], progress, slot: int,
                    finished: threading.Event) -> None:
    """Publish this process's count of ok operations for the parent's progress line."""
    while not finished.wait(0.25):
        progress[slot] = sum(c.ok_count for c in clients)


def receive(conn, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError(f"a generator process did not answer ({what}) within {timeout:.0f} s")
    message = conn.recv()
    if isinstance(message, tuple) and message[0] == "failed":
        raise RuntimeError(f"a generator process failed ({what}):\n{message[1]}")
    return message


class LoadResult:
    """What one timed run produced."""

    def __init__(self, figures: list[dict], services_cpu_s: dict[str, float] | None) -> None:
        self.tally = Tally()
        for figure in figures:
            self.tally.add(figure["tally"])
        self.wall_s = max(f["ended"] for f in figures) - min(f["started"] for f in figures)
        self.generator_cpu_s = sum(f["cpu_s"] for f in figures)
        self.latencies = sorted(self.tally.ok_latencies())
        self.ok = len(self.latencies)
        self.services_cpu_s = services_cpu_s

    def figures(self) -> dict:
        lat = self.latencies
        return {"ok": self.ok, "wall_s": self.wall_s,
                "throughput_ops": self.ok / self.wall_s if self.wall_s > 0 else 0.0,
                "avg_ms": 1000 * statistics.fmean(lat) if lat else 0.0,
                "p50_ms": 1000 * percentile(lat, 0.50), "p95_ms": 1000 * percentile(lat, 0.95),
                "p99_ms": 1000 * percentile(lat, 0.99),
                "errors": sum(self.tally.errors.values()),
                "conflicts": sum(self.tally.conflicts.values()),
                "unexpected": sum(self.tally.unexpected.values()),
                "generator_cpu_s": self.generator_cpu_s,
                "services_cpu_s": self.services_cpu_s}


def percentile(ordered: list[float] | array, q: float) -> float:
    """Nearest-rank percentile of sorted values (0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_load(addresses: dict[str, tuple[str, int]], buyers: int, sellers: int, procs: int,
             ops: int | None, seconds: float, label: str, seed: str,
             deployment: "Deployment | None" = None, on_tick=None) -> LoadResult:
    """Set up ``sellers`` + ``buyers`` clients in ``procs`` processes, run them, collect.

    With ``deployment``, its services' CPU time during the timed part is measured too.
    """
    specs = [("seller", i) for i in range(sellers)] + [("buyer", i) for i in range(buyers)]
    procs = max(1, min(procs, len(specs)))
    context = multiprocessing.get_context("spawn")
    progress = context.Array("q", procs, lock=False)
    tag = secrets.token_hex(3)
    workers = []
    for slot in range(procs):
        mine, theirs = context.Pipe()
        process = context.Process(target=worker_main, daemon=True, args=(
            theirs, specs[slot::procs], addresses, tag, seed, ops, seconds, progress, slot))
        process.start()
        workers.append((process, mine))
    try:
        for _, conn in workers:
            conn.send("sellers")
        catalog = [entry for _, conn in workers for entry in receive(conn, 600, "seller setup")]
        for _, conn in workers:
            conn.send(("buyers", catalog))
        for _, conn in workers:
            receive(conn, 600, "buyer setup")
        cpu_before = deployment.cpu_s() if deployment else None
        for _, conn in workers:
            conn.send("go")
        figures = watch(workers, progress, len(specs) * ops if ops else None, seconds, label,
                        deployment, on_tick)
        services_cpu = ({name: seconds - cpu_before[name]
                         for name, seconds in deployment.cpu_s().items()}
                        if deployment else None)
    finally:
        for process, conn in workers:
            process.join(5)
            if process.is_alive():
                process.terminate()
            conn.close()
    return LoadResult(figures, services_cpu)


def watch(workers: list, progress, total: int | None, seconds: float, label: str,
          deployment: "Deployment | None", on_tick) -> list[dict]:
    """Show progress until every worker reports; return their figures.

    Gives up at once if one of ``deployment``'s services exits meanwhile.
    """
    started = time.monotonic()
    figures: list[dict | None] = [None] * len(workers)
    last_shown = started
    interval = 1.0 if sys.stderr.isatty() else 10.0
    while any(f is None for f in figures):
        for index, (_, conn) in enumerate(workers):
            if figures[index] is None and conn.poll(0.05):
                figures[index] = receive(conn, 0, "run")[1]
        now = time.monotonic()
        if now - started > seconds + 120:
            raise RuntimeError(f"{label}: the run did not finish in time")
        if deployment and deployment.exited():
            raise RuntimeError(f"{label}: {deployment.exited()} exited during the run")
        if now - last_shown >= interval:
            last_shown = now
            done = sum(progress)
            of = f"/{total}" if total else ""
            show(f"{label}: {done}{of} ok ops, {done / (now - started):,.0f} ops/s so far")
        if on_tick:
            on_tick(now - started)
    return figures


def show(text: str) -> None:
    """A progress line on stderr (updated in place on a terminal)."""
    end = "\r" if sys.stderr.isatty() and text.endswith("so far") else "\n"
    print(f"{text:<100}", end=end, file=sys.stderr, flush=True)


# -- services ---------------------------------------------------------------

class ServiceProcess:
    """One service started as a subprocess on a free port; logs go to ``log_path``."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            self.proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, text=True,
                                         stdout=subprocess.PIPE, stderr=log_file)
        started, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if started else ""
        if " ready on " not in line:
            self.stop()
            raise RuntimeError(f"{' '.join(command)} did not start (see {log_path}): {line!r}")
        self.name = line.split(" ready on ")[0]
        self.address = parse_address(line.split(" ready on ")[1].strip())

    @property
    def where(self) -> str:
        return "%s:%d" % self.address

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


class Deployment:
    """Services this benchmark started; ``addresses`` maps a client role to its server.

    ``scratch`` is a directory made for them, removed when they stop.
    """

    def __init__(self, services: list[ServiceProcess], addresses: dict[str, tuple[str, int]],
                 scratch: Path | None = None):
        self.services = services
        self.addresses = addresses
        self.scratch = scratch

    def cpu_s(self) -> dict[str, float]:
        return {service.name: service.cpu_s() for service in self.services}

    def exited(self) -> str:
        """The names of the services that are no longer running ('' while all run)."""
        return ", ".join(s.name for s in self.services if s.proc.poll() is not None)

    def rss_kb(self) -> dict[str, int]:
        return {service.name: service.rss_kb() for service in self.services}

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def start_market(logs: Path, data_root: Path | None) -> Deployment:
    """The four services on free ports, databases first.

    With ``data_root`` the databases keep their data in a fresh directory under it.
    """
    started: list[ServiceProcess] = []
    scratch = None
    if data_root:
        data_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="market-", dir=data_root))
    try:
        for script in ("product_db.py", "customer_db.py"):
            extra = ["--data-dir", str(scratch / Path(script).stem)] if scratch else []
            started.append(ServiceProcess([script, "--port", "0", *extra],
                                          logs / f"{Path(script).stem}.log"))
        dbs = ["--product-db", started[0].where, "--customer-db", started[1].where]
        for script in ("seller_server.py", "buyer_server.py"):
            started.append(ServiceProcess([script, "--port", "0", *dbs],
                                          logs / f"{Path(script).stem}.log"))
    except BaseException:
        Deployment(started, {}, scratch).stop()
        raise
    return Deployment(started, {"seller": started[2].address, "buyer": started[3].address},
                      scratch)


def start_echo_chain(logs: Path) -> Deployment:
    me = str(Path(__file__).resolve())
    echo = ServiceProcess([me, "--serve-echo"], logs / "echo.log")
    try:
        relay = ServiceProcess([me, "--serve-relay", echo.where], logs / "relay.log")
    except BaseException:
        echo.stop()
        raise
    return Deployment([echo, relay], {"seller": relay.address, "buyer": relay.address})


# -- the benchmark ----------------------------------------------------------

def parse_scenarios(text: str) -> list[tuple[int, int]]:
    """'1x1,10x10' -> [(buyers, sellers), ...]."""
    scenarios = []
    for part in text.split(","):
        buyers, _, sellers = part.strip().partition("x")
        if not (buyers.isdigit() and sellers.isdigit()) or int(buyers) + int(sellers) == 0:
            raise argparse.ArgumentTypeError(f"expected BUYERSxSELLERS, got {part!r}")
        scenarios.append((int(buyers), int(sellers)))
    return scenarios


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def cdf_points(ordered: list[float], points: int = 200) -> list[float]:
    """Latencies (ms) at evenly spaced quantiles 0..1, for the CDF chart."""
    if not ordered:
        return []
    return [round(1000 * percentile(ordered, i / points), 4) for i in range(points + 1)]


def run_scenario(args: argparse.Namespace, buyers: int, sellers: int, echo: Deployment,
                 target: dict | None) -> dict:
    name = f"{buyers}x{sellers}"
    ours: list[LoadResult] = []
    theirs: list[LoadResult] = []
    for run in range(1, args.runs + 1):
        label = f"{name} run {run}/{args.runs}"
        seed = f"{name}-{run}"
        market = None
        if target is None:
            market = start_market(args.out / "logs", args.data_dir)
        try:
            ours.append(run_load(target or market.addresses, buyers, sellers, args.procs,
                                 args.ops, RUN_TIME_LIMIT, f"{label} marketplace", seed, market))
        finally:
            if market:
                market.stop()
        theirs.append(run_load(echo.addresses, buyers, sellers, args.procs, args.ops,
                               RUN_TIME_LIMIT, f"{label} echo chain", seed, echo))
        a, b = ours[-1].figures(), theirs[-1].figures()
        show(f"{label}: {a['throughput_ops']:,.0f} ok ops/s, p50 {a['p50_ms']:.2f} ms, "
             f"p99 {a['p99_ms']:.2f} ms, errors {a['errors']}, conflicts {a['conflicts']}; "
             f"echo chain {b['throughput_ops']:,.0f} ops/s")
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
    row["services_cpu_us_per_op"] = cpu_per_op(runs)
    row["echo_cpu_us_per_op"] = cpu_per_op(echo_runs)
    row["cdf_ms"] = cdf_points(sorted(x for r in ours for x in r.latencies))
    row["echo_cdf_ms"] = cdf_points(sorted(x for r in theirs for x in r.latencies))
    row["per_run"] = runs
    row["echo_per_run"] = echo_runs
    return row


def cpu_per_op(runs: list[dict]) -> dict[str, float]:
    """CPU microseconds each service spent per ok operation, over all runs."""
    measured = [r for r in runs if r["services_cpu_s"] is not None]
    ok = sum(r["ok"] for r in measured)
    if not ok:
        return {}
    names = measured[0]["services_cpu_s"]
    return {name: 1e6 * sum(r["services_cpu_s"][name] for r in measured) / ok for name in names}


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
              "services_cpu_pct_of_machine"]


def write_results(out: Path, report: dict) -> None:
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in report["scenarios"]:
            writer.writerow({k: round(v, 3) if isinstance(v, float) else v
                             for k, v in row.items()})


def draw_charts(out: Path, report: dict) -> list[str]:
    """Latency bars, throughput beside the echo chain, latency CDF; returns file names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    rows = report["scenarios"]
    labels = [f"{r['buyers']} buyer{'s' * (r['buyers'] != 1)} +\n"
              f"{r['sellers']} seller{'s' * (r['sellers'] != 1)}" for r in rows]
    m = report["machine"]
    note = (f"{m['cores']} cores, Python {m['python']}; {rows[0]['runs']} run(s) x "
            f"{rows[0]['ops_per_client']} ops per client")
    x = list(range(len(rows)))

    def bars(ax, offset: float, width: float, key: str, texts: list[str], **style) -> None:
        """One bar per scenario with its std as an error bar, labelled just above that."""
        values = [r[key] for r in rows]
        stds = [r[f"{key}_std"] for r in rows]
        ax.bar([p + offset for p in x], values, width, yerr=stds, capsize=3, **style)
        for p, value, std, text in zip(x, values, stds, texts):
            ax.annotate(text, (p + offset, value + std), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (key, title) in enumerate([("avg_ms", "average"), ("p50_ms", "p50"),
                                      ("p95_ms", "p95"), ("p99_ms", "p99")]):
        bars(ax, (i - 1.5) * 0.2, 0.2, key, [f"{r[key]:.3g}" for r in rows], label=title)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(NullFormatter())
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 2.5)  # room for the legend above the tallest bar
    ax.set_xticks(x, labels)
    ax.set_ylabel("response time (ms, log scale)")
    ax.set_xlabel("scenario (concurrent clients)")
    ax.set_title(f"Marketplace response time by scenario\n{note}; error bars: std over runs",
                 fontsize=10)
    ax.legend(title="ok operations", loc="upper left", ncols=4)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    bars(ax, -0.19, 0.38, "throughput_ops",
         [f"{r['throughput_ops']:,.0f}\n({r['ratio_vs_echo']:.2f} x echo)" for r in rows],
         label="marketplace")
    bars(ax, 0.19, 0.38, "echo_throughput_ops",
         [f"{r['echo_throughput_ops']:,.0f}" for r in rows],
         label="echo chain (client -> relay -> echo)", color="tab:gray")
    ax.set_xticks(x, labels)
    ax.set_ylabel("throughput (ok operations / s)")
    ax.set_xlabel("scenario (concurrent clients)")
    ax.set_ylim(0, 1.35 * max(r[key] + r[f"{key}_std"] for r in rows
                              for key in ("throughput_ops", "echo_throughput_ops")))
    ax.set_title(f"Throughput beside the echo chain of the same stack\n{note}; "
                 "error bars: std over runs", fontsize=10)
    ax.legend(loc="upper left", ncols=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, row in enumerate(rows):
        color = f"C{i}"
        for key, style, who in (("cdf_ms", "-", "marketplace"), ("echo_cdf_ms", ":", "echo chain")):
            points = row[key]
            if points:
                fractions = [j / (len(points) - 1) for j in range(len(points))]
                ax.plot(points, fractions, style, color=color,
                        label=f"{row['buyers']} + {row['sellers']}: {who}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plain)
    ax.set_xlabel("response time (ms, log scale)")
    ax.set_ylabel("fraction of ok operations at or below")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"Response time distribution (CDF) per scenario\n{note}, all runs pooled",
                 fontsize=10)
    ax.legend(title="buyers + sellers", fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out / "latency_cdf.png", dpi=120)
    plt.close(fig)
    return ["latency.png", "throughput.png", "latency_cdf.png"]


def print_table(rows: list[dict]) -> None:
    print(f"{'scenario':>9} {'avg ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'ok ops/s':>14} {'errors':>6} {'conflicts':>9} {'echo ops/s':>12} {'ratio':>6}")
    for r in rows:
        print(f"{r['scenario']:>9} {r['avg_ms']:8.2f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {r['throughput_ops']:8.0f} ±{r['throughput_ops_std']:<5.0f}"
              f"{r['errors'] + r['unexpected']:>6} {r['conflicts']:>9} "
              f"{r['echo_throughput_ops']:12.0f} {r['ratio_vs_echo']:6.2f}")


def benchmark(args: argparse.Namespace, target: dict | None) -> dict:
    shutil.rmtree(args.out / "logs", ignore_errors=True)
    host = machine()  # before the load, so the load average shows what else was running
    echo = start_echo_chain(args.out / "logs")
    try:
        rows = [run_scenario(args, buyers, sellers, echo, target)
                for buyers, sellers in args.scenarios]
    finally:
        echo.stop()
    return {"machine": {**host, "generator_processes": args.procs},
            "config": {"command": " ".join(["python3", "performance.py", *sys.argv[1:]]),
                       "runs": args.runs, "ops_per_client": args.ops,
                       "target": args.target, "fresh_state_per_run": target is None,
                       "data_dir": str(args.data_dir) if args.data_dir else None,
                       "seller_mix": SELLER_MIX, "buyer_mix": BUYER_MIX},
            "scenarios": rows}


def soak(args: argparse.Namespace, target: dict | None) -> dict:
    """Steady load of the last scenario for ``args.soak`` seconds, sampling RSS."""
    buyers, sellers = args.scenarios[-1]
    market = None if target else start_market(args.out / "logs", args.data_dir)
    samples: list[dict] = []

    def sample(elapsed: float) -> None:
        if market and (not samples or elapsed - samples[-1]["t_s"] >= args.soak / 10):
            samples.append({"t_s": round(elapsed, 1), "rss_kb": market.rss_kb()})

    try:
        result = run_load(target or market.addresses, buyers, sellers, args.procs, None,
                          args.soak, f"soak {buyers}x{sellers}", "soak", market, sample)
        if market:
            samples.append({"t_s": round(result.wall_s, 1), "rss_kb": market.rss_kb()})
    finally:
        if market:
            market.stop()
    return {"machine": machine(), "scenario": f"{buyers}x{sellers}", "seconds": args.soak,
            "rss_kb_start": samples[0]["rss_kb"] if samples else None,
            "rss_kb_end": samples[-1]["rss_kb"] if samples else None, "rss_samples": samples,
            **result.figures()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark the marketplace against the echo chain of its own stack.")
    parser.add_argument("--runs", type=int, help="runs per scenario (default 10)")
    parser.add_argument("--ops", type=int, help="operations per client (default 1000)")
    parser.add_argument("--scenarios", type=parse_scenarios,
                        help=f"BUYERSxSELLERS,... (default {DEFAULT_SCENARIOS})")
    parser.add_argument("--out", type=Path, default=Path("perf-results"),
                        help="directory for results and charts (default perf-results)")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds for CI: scenarios 1x1,4x4, 50 ops, 1 run")
    parser.add_argument("--soak", type=float, metavar="SECONDS",
                        help="instead: steady load of the last scenario, reporting RSS")
    parser.add_argument("--target", metavar="SELLER_HOST:PORT,BUYER_HOST:PORT",
                        help="use these running frontends instead of starting services")
    parser.add_argument("--data-dir", type=Path,
                        help="start the databases with --data-dir in a fresh directory under "
                             "this one (removed after each run)")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2,
                        help="load generator processes (default: one per core)")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-relay", type=parse_address, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        return serve_echo_chain_part(EchoService())
    if args.serve_relay:
        return serve_echo_chain_part(RelayService(Client(args.serve_relay, max_idle=1024)))
    defaults = QUICK if args.quick else {"scenarios": DEFAULT_SCENARIOS, "ops": 1000, "runs": 10}
    args.scenarios = args.scenarios or parse_scenarios(defaults["scenarios"])
    args.ops = args.ops or defaults["ops"]
    args.runs = args.runs or defaults["runs"]
    target = None
    if args.target:
        seller, _, buyer = args.target.partition(",")
        target = {"seller": parse_address(seller), "buyer": parse_address(buyer)}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.soak:
        report = soak(args, target)
        (args.out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps({k: report[k] for k in ("scenario", "seconds", "ok", "throughput_ops",
                                                   "p50_ms", "p99_ms", "errors", "unexpected",
                                                   "rss_kb_start", "rss_kb_end")}, indent=2))
        return
    if importlib.util.find_spec("matplotlib") is None:  # say so now, not after the run
        raise RuntimeError("matplotlib is missing: run ./run_tests.sh once and use "
                           ".venv/bin/python performance.py, or pip install -r requirements.txt")
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
