"""The benchmark's load: simulated sellers and buyers, run in generator processes.

``SellerBench`` and ``BuyerBench`` are one user each (own socket, account,
session, seeded op mix); ``run_load`` sets ``sellers`` + ``buyers`` of them up
in several processes outside the clock, starts them together and collects a
``LoadResult`` (ok latencies per op, conflicts, errors, CPU). Outcomes follow
the contract's section 7: only ``ok`` replies count as throughput.

Safe on a live market (contract section 13): every account is a new one with a
name of its own (``bench-<random>-s0``; a name taken makes the run fail, never
log in to someone else's account), and buyers look at, cart, buy and rate only
items of this run's sellers: search results are filtered to them, whatever else
a search shows. So a run adds accounts, items and purchases of its own, and
changes nothing of anyone else's. On a live market the sellers then take their
items' units off sale (``withdraw``), so they no longer show in searches.
"""
from __future__ import annotations

import math
import multiprocessing
import random
import resource
import secrets
import socket
import ssl
import statistics
import sys
import threading
import time
import traceback
from array import array
from collections import Counter
from typing import Any, Callable

from market.config import SAMPLE_CARD
from market.net.tls import client_context
from market.net.tls import connect as tls_connect
from market.paging import page_args
from protocol import ApiError, decode, encode, envelope, read_line

RUN_TIME_LIMIT = 3600.0  # seconds one timed run may take before its clients give up
OP_TIMEOUT = 30.0  # seconds a client waits for one reply
RETRY_PAUSE = 0.1  # seconds a client waits after a transport failure before its next op
ITEMS_PER_SELLER = 10
CATEGORIES = 10
# The keywords the benchmark's items draw theirs from.
KEYWORD_CHOICES = ("lamp", "desk", "chair", "book", "phone", "cable", "mug", "shoe", "bag",
                   "watch")
PASSWORD = "bench-pw"

SELLER_MIX = {"RegisterItemForSale": 5, "ChangeItemPrice": 25, "UpdateUnitsForSale": 15,
              "DisplayItemsForSale": 25, "GetSellerRating": 30}
BUYER_MIX = {"SearchItemsForSale": 25, "GetItem": 15, "AddItemToCart": 15,
             "RemoveItemFromCart": 5, "DisplayCart": 10, "MakePurchase": 8,
             "ProvideFeedback": 5, "GetSellerRating": 10, "GetBuyerPurchases": 7}


class Tally:
    """Outcomes of operations: ok latencies (seconds) per op, and the failures."""

    def __init__(self) -> None:
        self.latencies: dict[str, array] = {}
        self.conflicts: Counter = Counter()  # op -> count
        self.errors: Counter = Counter()  # (op, "transport" | "internal") -> count
        self.unexpected: Counter = Counter()  # (op, error code) -> count
        # Only when the run is cut into windows (the soak): by the window an op started in.
        self.windows: dict[int, array] = {}  # window -> ok latencies
        self.window_outcomes: Counter = Counter()  # (window, op, outcome) -> count

    def add(self, other: "Tally") -> None:
        for op, values in other.latencies.items():
            self.latencies.setdefault(op, array("d")).extend(values)
        self.conflicts.update(other.conflicts)
        self.errors.update(other.errors)
        self.unexpected.update(other.unexpected)
        for window, values in other.windows.items():
            self.windows.setdefault(window, array("d")).extend(values)
        self.window_outcomes.update(other.window_outcomes)

    def ok_latencies(self) -> array:
        joined = array("d")
        for values in self.latencies.values():
            joined.extend(values)
        return joined


class BenchUser:
    """One user: its own socket, account and session; subclasses choose the ops."""

    role = ""
    mix: dict[str, int] = {}

    def __init__(self, address: tuple[str, int], username: str, seed: str,
                 tls: ssl.SSLContext | None = None) -> None:
        self.address = address
        self.tls = tls  # with a context: over TLS, verifying the frontend with its CA
        self.username = username
        self.rng = random.Random(seed)
        self.session: str | None = None
        self.sock: Any = None  # a socket, or a TlsStream over one
        self.rfile: Any = None
        self.tally = Tally()
        self.ops_done = 0  # operations performed, whatever their outcome (for progress)
        self.ended = 0.0  # time.monotonic() when the last operation finished
        self.ops_names = list(self.mix)
        self.weights = list(self.mix.values())

    def only(self, op: str) -> None:
        """Perform ``op`` alone (where its preconditions allow: a buyer with an empty cart
        adds to it before it can buy), to measure what one op costs."""
        self.ops_names, self.weights = [op], [1]

    def connect(self) -> None:
        sock = socket.create_connection(self.address, timeout=OP_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                sock = tls_connect(sock, self.tls, self.address[0], OP_TIMEOUT)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.rfile = self.sock.makefile("rb")

    def close(self) -> None:
        if self.sock is not None:
            self.rfile.close()
            self.sock.close()
            self.sock = None

    def exchange(self, op: str, args: dict) -> dict:
        """Send one request and return the reply envelope (raises on transport failure)."""
        self.sock.sendall(encode(envelope(op, args, self.session)))
        line = read_line(self.rfile)
        if line is None:
            raise ConnectionError("the server closed the connection")
        return decode(line, exact=False)

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

    def run(self, ops: int | None, stop_at: float, window: float = 0.0,
            origin: float = 0.0) -> None:
        """Perform ``ops`` operations (or until ``stop_at`` when ``ops`` is None).

        With ``window`` (seconds), outcomes are also tallied by the window of
        the run, counted from ``origin`` (``time.monotonic()``), each op started in.
        """
        done = 0
        while (ops is None or done < ops) and (now := time.monotonic()) < stop_at:
            done += 1
            op, args = self.next_op()
            outcome, elapsed = self.perform(op, args)
            self.ops_done = done
            if window:
                index = int((now - origin) // window)
                self.tally.window_outcomes[(index, op, outcome)] += 1
                if outcome == "ok":
                    self.tally.windows.setdefault(index, array("d")).append(elapsed)
        self.ended = time.monotonic()
        self.close()

    def perform(self, op: str, args: dict) -> tuple[str, float]:
        """One operation, tallied: its outcome ("ok", "conflict", "error" or
        "unexpected") and, when ok, its latency in seconds."""
        started = time.perf_counter()
        try:
            if self.sock is None:
                self.connect()
            reply = self.exchange(op, args)
        except (OSError, ApiError):
            self.tally.errors[(op, "transport")] += 1
            self.close()
            time.sleep(RETRY_PAUSE)
            return "error", 0.0
        elapsed = time.perf_counter() - started
        if reply.get("ok"):
            self.tally.latencies.setdefault(op, array("d")).append(elapsed)
            self.on_ok(op, args, reply.get("result") or {})
            return "ok", elapsed
        code = (reply.get("error") or {}).get("code")
        if code == "conflict":
            self.tally.conflicts[op] += 1
            self.on_conflict(op, args)
            return "conflict", 0.0
        if code == "internal":
            self.tally.errors[(op, "internal")] += 1
            return "error", 0.0
        self.tally.unexpected[(op, str(code))] += 1
        return "unexpected", 0.0

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
            "keywords": rng.sample(KEYWORD_CHOICES, rng.randint(1, 3)),
            "condition": rng.choice(("new", "used")), "price": rng.randint(100, 10_000) / 100,
            "quantity": rng.randint(10, 100)}


class SellerBench(BenchUser):
    role = "seller"
    mix = SELLER_MIX

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_ids: list[int] = []
        self.seller_id = 0
        self.withdrawn: Counter = Counter()  # True: items taken off sale, False: failed to

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

    def withdraw(self) -> None:
        """Take the units left of this seller's items off sale, so that after a run on a
        live market they no longer show in searches; counts what it could not."""
        self.connect()
        after = None
        while True:
            page = self.setup_call("DisplayItemsForSale", **page_args(500, after))
            for item in page["items"]:
                if item["quantity"]:
                    reply = self.exchange("UpdateUnitsForSale", {"item_id": item["item_id"],
                                                                 "quantity": item["quantity"]})
                    self.withdrawn[bool(reply.get("ok"))] += 1
            after = page["next"]
            if after is None:
                break
        self.close()


class BuyerBench(BenchUser):
    role = "buyer"
    mix = BUYER_MIX

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.own_sellers: set[int] = set()  # this run's sellers: the only items touched
        self.items: dict[int, int] = {}  # item_id -> seller_id, of our items seen
        self.item_ids: list[int] = []  # the keys of ``items``, for random choice
        self.last_found: list[int] = []  # the items of the last search
        self.cart: dict[int, int] = {}  # item_id -> units, as this session's cart holds
        self.unrated: set[int] = set()  # bought and not rated yet
        self.rated: set[int] = set()
        self.check_cart = False  # a purchase failed: look at the cart next
        self.to_remove: list[int] = []  # unavailable cart lines to take out

    def learn(self, catalog: list[tuple[int, int]]) -> None:
        """Remember the (item_id, seller_id) entries of this run's sellers; others are
        never bought, carted, rated or looked at."""
        for item_id, seller_id in catalog:
            if seller_id in self.own_sellers and item_id not in self.items:
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
                args["keywords"] = self.rng.sample(KEYWORD_CHOICES, self.rng.randint(1, 2))
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
            return op, SAMPLE_CARD
        if op == "ProvideFeedback":
            return op, {"item_id": self.rng.choice(sorted(self.unrated)),
                        "vote": self.rng.choice(("up", "up", "up", "down"))}
        if op == "GetSellerRating":
            return op, {"seller_id": self.items[self.rng.choice(self.item_ids)]}
        return op, {}

    def on_ok(self, op: str, args: dict, result: dict) -> None:
        if op == "SearchItemsForSale":
            found = [(item["item_id"], item["seller_id"]) for item in result.get("items", ())
                     if item["seller_id"] in self.own_sellers]
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


def frontend_of(addresses: tuple[str, int] | list[tuple[str, int]],
                index: int) -> tuple[str, int]:
    """The frontend client ``index`` of a role talks to: its role's one address, or one of
    several in turn, so the clients spread evenly over them."""
    return addresses[index % len(addresses)] if isinstance(addresses, list) else addresses


def worker_main(conn, specs: list[tuple[str, int]], addresses: dict[str, Any],
                tag: str, seed: str, ops: int | None, seconds: float, window: float, progress,
                slot: int, only: dict[str, str] | None = None, tls_ca: str = "") -> None:
    """One generator process: sets its clients up, then runs them on the parent's word
    (tallying by ``window`` of seconds too, when not 0).

    Talks to the parent over ``conn``: "sellers" -> catalog, ("buyers", catalog)
    -> "ready", "go" -> ("done", figures), then "withdraw" -> ("withdrawn", counts) or
    "end"; any failure -> ("failed", text).
    """
    kinds = {"seller": SellerBench, "buyer": BuyerBench}
    tls = client_context(tls_ca) if tls_ca else None  # one per process: not picklable
    clients = [kinds[role](frontend_of(addresses[role], index), f"bench-{tag}-{role[0]}{index}",
                           f"{seed}-{role}-{index}", tls) for role, index in specs]
    if only:
        for client in clients:
            client.only(only[client.role])
    sellers = [c for c in clients if isinstance(c, SellerBench)]
    buyers = [c for c in clients if isinstance(c, BuyerBench)]
    try:
        conn.recv()
        run_threads([c.setup for c in sellers])  # all at once: the frontends queue the hashing
        conn.send([(item_id, s.seller_id) for s in sellers for item_id in s.item_ids])
        _, catalog = conn.recv()
        for buyer in buyers:
            buyer.own_sellers = {seller_id for _, seller_id in catalog}
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
        run_threads([lambda c=c: c.run(ops, stop_at, window, started) for c in clients])
        after = resource.getrusage(resource.RUSAGE_SELF)
        finished.set()
        progress[slot] = sum(c.ops_done for c in clients)
        tally = Tally()
        for client in clients:
            tally.add(client.tally)
        cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
        conn.send(("done", {"started": started, "ended": max(c.ended for c in clients),
                            "cpu_s": cpu, "tally": tally}))
        if conn.recv() == "withdraw":
            run_threads([s.withdraw for s in sellers])
            counts: Counter = Counter()
            for seller in sellers:
                counts.update(seller.withdrawn)
            conn.send(("withdrawn", {"items": counts[True], "failed": counts[False]}))
    except BaseException:
        conn.send(("failed", traceback.format_exc()))
    finally:
        for client in clients:
            client.close()


def report_progress(clients: list[BenchUser], progress, slot: int,
                    finished: threading.Event) -> None:
    """Publish this process's count of operations done for the parent's progress line."""
    while not finished.wait(0.25):
        progress[slot] = sum(c.ops_done for c in clients)


def receive(conn, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError(f"a generator process did not answer ({what}) within {timeout:.0f} s")
    message = conn.recv()
    if isinstance(message, tuple) and message[0] == "failed":
        raise RuntimeError(f"a generator process failed ({what}):\n{message[1]}")
    return message


class LoadResult:
    """What one timed run produced."""

    def __init__(self, figures: list[dict], services_cpu: dict[str, dict] | None,
                 service_stats: dict | None = None, withdrawn: dict | None = None) -> None:
        self.tally = Tally()
        for figure in figures:
            self.tally.add(figure["tally"])
        self.wall_s = max(f["ended"] for f in figures) - min(f["started"] for f in figures)
        self.generator_cpu_s = sum(f["cpu_s"] for f in figures)
        self.latencies = sorted(self.tally.ok_latencies())
        self.ok = len(self.latencies)
        # Per service: CPU seconds of the timed part (None: not read), and how it was read
        # ({"source", "resolution_s"}; ``Deployment.cpu_since``).
        self.services_cpu_s = ({name: spent["cpu_s"] for name, spent in services_cpu.items()}
                               if services_cpu is not None else None)
        self.services_cpu_resolution = (
            {name: {"source": spent["source"], "resolution_s": spent["resolution_s"]}
             for name, spent in services_cpu.items()} if services_cpu is not None else None)
        self.service_stats = service_stats  # {"before": Stats by service, "after": ...}
        self.withdrawn = withdrawn  # {"items": taken off sale, "failed": not}

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
                "services_cpu_s": self.services_cpu_s,
                "services_cpu_resolution": self.services_cpu_resolution,
                "service_stats": self.service_stats,
                "withdrawn": self.withdrawn}

    def window_figures(self, window: float, seconds: float) -> tuple[list[dict], dict | None]:
        """Figures of each full ``window`` seconds of a run of ``seconds``, and of the tail
        shorter than a window after them (None when there is none): ok ops/s, p50 and
        p99, failures, and the items and purchases added."""
        full = int(seconds // window)
        rows = [self.one_window(index, window, window) for index in range(full)]
        tail = seconds - full * window
        return rows, (self.one_window(full, window, tail) if tail > 0 else None)

    def one_window(self, index: int, window: float, length: float) -> dict:
        """The figures of window ``index`` (of ``window`` seconds), ``length`` seconds long."""
        outcomes = {(op, outcome): n for (at, op, outcome), n
                    in self.tally.window_outcomes.items() if at == index}
        by_outcome: Counter = Counter()
        for (_, outcome), n in outcomes.items():
            by_outcome[outcome] += n
        lat = sorted(self.tally.windows.get(index, ()))
        return {"window": index, "start_s": index * window, "seconds": length,
                "ok": len(lat), "throughput_ops": len(lat) / length,
                "p50_ms": 1000 * percentile(lat, 0.50), "p99_ms": 1000 * percentile(lat, 0.99),
                "errors": by_outcome["error"], "unexpected": by_outcome["unexpected"],
                "conflicts": by_outcome["conflict"],
                "items_added": outcomes.get(("RegisterItemForSale", "ok"), 0),
                "purchases_added": outcomes.get(("MakePurchase", "ok"), 0)}


def percentile(ordered: list[float] | array, q: float) -> float:
    """Nearest-rank percentile of sorted values (0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_load(addresses: dict[str, Any], buyers: int, sellers: int, procs: int,
             ops: int | None, seconds: float, label: str, seed: str,
             deployment: Any = None, on_tick=None, window: float = 0.0,
             take_stats: Callable[[], dict] | None = None,
             withdraw: bool = False, only: dict[str, str] | None = None,
             tls_ca: str = "") -> LoadResult:
    """Set up ``sellers`` + ``buyers`` clients in ``procs`` processes, run them, collect.

    With ``deployment``, its services' CPU time during the timed part is measured too
    (``Deployment.cpu_since``: each figure with the resolution it was read at);
    ``take_stats`` (each service's ``Stats``) is called just before and just after it;
    with ``window`` (seconds), outcomes are tallied per window as well (``window_figures``);
    with ``withdraw``, the sellers take their items' units off sale afterwards; with
    ``only`` ({"seller": op, "buyer": op}), each role performs that one op; with ``tls_ca``
    (a CA file), every client connects over TLS and verifies its frontend with it.
    """
    specs = [("seller", i) for i in range(sellers)] + [("buyer", i) for i in range(buyers)]
    procs = max(1, min(procs, len(specs)))
    context = multiprocessing.get_context("spawn")
    progress = context.Array("q", procs, lock=False)
    tag = secrets.token_hex(4)
    workers = []
    for slot in range(procs):
        mine, theirs = context.Pipe()
        process = context.Process(target=worker_main, daemon=True, args=(
            theirs, specs[slot::procs], addresses, tag, seed, ops, seconds, window, progress,
            slot, only, tls_ca))
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
        stats_before = take_stats() if take_stats else None
        cpu_before = deployment.cpu_readings() if deployment else None
        for _, conn in workers:
            conn.send("go")
        figures = watch(workers, progress, len(specs) * ops if ops else None, seconds, label,
                        deployment, on_tick)
        services_cpu = deployment.cpu_since(cpu_before) if deployment else None
        stats = {"before": stats_before, "after": take_stats()} if take_stats else None
        for _, conn in workers:
            conn.send("withdraw" if withdraw else "end")
        withdrawn: Counter = Counter()
        if withdraw:
            for _, conn in workers:
                withdrawn.update(receive(conn, 600, "withdrawing the items")[1])
    finally:
        for process, conn in workers:
            process.join(5)
            if process.is_alive():
                process.terminate()
            conn.close()
    return LoadResult(figures, services_cpu, stats, dict(withdrawn) if withdraw else None)


def watch(workers: list, progress, total: int | None, seconds: float, label: str,
          deployment: Any, on_tick) -> list[dict]:
    """Show progress (operations done, ops/s, time left in this run) until every worker
    reports; return their figures.

    Gives up at once if one of ``deployment``'s services exits meanwhile.
    """
    started = time.monotonic()
    figures: list[dict | None] = [None] * len(workers)
    last_shown = started
    interval = 1.0 if interactive() else 10.0
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
            rate = done / (now - started)
            if total:
                left = (total - done) / rate if rate else None
                show(f"{label}: {done:,}/{total:,} ops, {rate:,.0f} ops/s, "
                     f"{duration(left)} left in this run", in_place=True)
            else:
                show(f"{label}: {done:,} ops, {rate:,.0f} ops/s, "
                     f"{duration(seconds - (now - started))} left", in_place=True)
        if on_tick:
            on_tick(now - started)
    return figures


def duration(seconds: float | None) -> str:
    """'about 3 min 20 s', 'about 45 s'; 'time unknown' for None."""
    if seconds is None:
        return "time unknown"
    seconds = max(0, round(seconds))
    minutes, rest = divmod(seconds, 60)
    return f"about {minutes} min {rest} s" if minutes else f"about {rest} s"


def interactive() -> bool:
    """Progress lines are updated in place only when both output streams are terminals."""
    return sys.stderr.isatty() and sys.stdout.isatty()


def show(text: str, in_place: bool = False) -> None:
    """A line on stderr; ``in_place`` (progress) lines overwrite each other on a
    terminal and are plain lines otherwise (no carriage returns in a file)."""
    if interactive():
        print(f"{text:<100}", end="\r" if in_place else "\n", file=sys.stderr, flush=True)
    else:
        print(text, file=sys.stderr, flush=True)


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
