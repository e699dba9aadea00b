"""A marketplace of real service processes, clients of its frontends, and small helpers
for what the end-to-end tests do over and over (list an item, count units, expect a
failure, race, page, wait, stall a process)."""
from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from market.config import SAMPLE_CARD as CARD  # noqa: F401  (passes every check)
from market.keys import fresh_key
from market.net.client import Client
from market.ops.launch import ServiceProcess
from market.paging import page_args
from market.storage import formats
from protocol import ApiError, decode, encode, result_of

ROOT = Path(__file__).resolve().parents[2]  # the project directory


@dataclass
class Market:
    """The four services of one marketplace, and clients for the two frontends."""

    product_db: ServiceProcess
    customer_db: ServiceProcess
    seller_server: ServiceProcess
    buyer_server: ServiceProcess
    clients: list = field(default_factory=list)
    extra: list = field(default_factory=list)  # more frontends, stopped with the market

    def procs(self) -> list[ServiceProcess]:
        return [self.product_db, self.customer_db, self.seller_server, self.buyer_server]

    def seller(self) -> "Api":
        return self._api(self.seller_server.address)

    def buyer(self) -> "Api":
        return self._api(self.buyer_server.address)

    def _api(self, address) -> "Api":
        api = Api(Client(address))
        self.clients.append(api.client)
        return api

    def client_of(self, frontend: ServiceProcess, session: str | None = None,
                  timeout: float = 30) -> "Api":
        """A client of any frontend of this market (closed with it), with ``session`` and
        a ``timeout`` longer than the frontends' database timeouts."""
        api = Api(Client(frontend.address, timeout=timeout))
        api.session = session
        self.clients.append(api.client)
        return api

    def another_frontend(self, script: str, *args: str) -> ServiceProcess:
        """One more frontend (``seller_server.py`` or ``buyer_server.py``) of this market's
        databases, waiting 2 s for them; ``args`` come last, so a ``--product-db`` or
        ``--customer-db`` there overrides the market's. Stopped with the market."""
        frontend = ServiceProcess(script, "--product-db", self.product_db.where,
                                  "--customer-db", self.customer_db.where,
                                  "--db-timeout", "2", *args).start()
        self.extra.append(frontend)
        return frontend

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for frontend in self.extra:
            frontend.stop()
        for proc in reversed(self.procs()):
            proc.stop()


class Api:
    """A test client of one frontend; remembers the session after ``login``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.session: str | None = None

    def __call__(self, op: str, **args):
        """Call ``op`` with the current session; return the result or raise ``ApiError``."""
        return self.client.call(op, args, self.session)

    def keyed(self, op: str, key: str, **args) -> dict:
        """Call ``op`` with ``idempotency_key`` ``key``; return the result or raise."""
        message = {"op": op, "args": args, "session": self.session, "idempotency_key": key}
        return result_of(decode(self.client.exchange(lambda: encode(message)), exact=False))

    def failure_of(self, op: str, key: str, **args) -> ApiError:
        """Call ``op`` with ``idempotency_key`` ``key`` expecting failure; return the error."""
        try:
            result = self.keyed(op, key, **args)
        except ApiError as error:
            return error
        raise AssertionError(f"{op} succeeded unexpectedly: {result}")

    def error(self, op: str, **args) -> str:
        """Call ``op`` expecting failure; return the error code."""
        try:
            result = self(op, **args)
        except ApiError as error:
            return error.code
        raise AssertionError(f"{op} succeeded unexpectedly: {result}")

    def register(self, username: str, password: str = "pw") -> int:
        result = self("CreateAccount", username=username, password=password)
        self.login(username, password)
        return next(iter(result.values()))

    def login(self, username: str, password: str = "pw") -> dict:
        result = self("Login", username=username, password=password)
        self.session = result["session"]
        return result


def start_market(session_timeout: float = 300.0, buyer_args: tuple = (),
                 seller_args: tuple = (), product_args: tuple = (), customer_args: tuple = (),
                 secret_file: Path | None = None, db_timeout: float = 2.0,
                 data_dir: Path | None = None, log_dir: Path | None = None,
                 env: dict | None = None) -> Market:
    """Start the four services on free ports; ``*_args`` are extra flags for one of them.

    With ``secret_file`` all four get ``--secret-file`` (the databases then
    serve only connections that prove they know it). With ``data_dir`` the databases
    keep their data in ``data_dir/product`` and ``data_dir/customer`` (a restarted one is
    the same market); with ``log_dir`` each service logs into ``log_dir/<script>.log``;
    ``env`` is added to the environment of all four.
    """
    def proc(script: str, *args: str) -> ServiceProcess:
        log = log_dir / f"{script}.log" if log_dir else None
        return ServiceProcess(script, *args, env=env, log=log).start()

    secret = ("--secret-file", str(secret_file)) if secret_file else ()
    product_dir = ("--data-dir", str(data_dir / "product")) if data_dir else ()
    customer_dir = ("--data-dir", str(data_dir / "customer")) if data_dir else ()
    product_db = proc("product_db.py", *secret, *product_dir, *product_args)
    customer_db = proc("customer_db.py", "--session-timeout", str(session_timeout),
                       *secret, *customer_dir, *customer_args)
    dbs = ["--product-db", "%s:%d" % product_db.address,
           "--customer-db", "%s:%d" % customer_db.address, "--db-timeout", str(db_timeout),
           *secret]
    seller = proc("seller_server.py", *dbs, *seller_args)
    buyer = proc("buyer_server.py", *dbs, *buyer_args)
    return Market(product_db, customer_db, seller, buyer)


def start_logged(tmp_path: Path, product_args: tuple = (), customer_args: tuple = (),
                 frontend_args: tuple = ()) -> Market:
    """The four services on free ports, each logging into ``tmp_path/logs/<script>.log``."""
    return start_market(product_args=product_args, customer_args=customer_args,
                        seller_args=frontend_args, buyer_args=frontend_args,
                        log_dir=tmp_path / "logs")


def log_of(tmp_path: Path, script: str) -> str:
    """What ``script`` of a ``start_logged`` market has logged so far."""
    path = tmp_path / "logs" / f"{script}.log"
    return path.read_text(errors="replace") if path.exists() else ""


_counter = itertools.count(1)


def unique_name(prefix: str = "user") -> str:
    """A name no other test of this run has: unique_name('alice') -> 'alice7_123'."""
    return f"{prefix}{next(_counter)}_{os.getpid() % 1000}"


def keyed() -> dict:
    """The ``key`` and ``fingerprint`` args of a keyed internal write, as a frontend sends
    them (a fresh key each call)."""
    return {"key": fresh_key(), "fingerprint": "0" * 32}


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds have passed (its
    last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def listing(seller: Api, name: str = "thing", price: float = 1, quantity: int = 10) -> int:
    """List an item (category 4, no keywords) as ``seller``; returns its id."""
    return seller("RegisterItemForSale", name=name, category=4, keywords=[], condition="new",
                  price=price, quantity=quantity)["item_id"]


def units(api: Api, item_id: int) -> int:
    """Units of ``item_id`` left, as a buyer sees them."""
    return api("GetItem", item_id=item_id)["item"]["quantity"]


def failure(api: Api, op: str, **args) -> ApiError:
    """Call ``op`` expecting failure; return the error."""
    try:
        result = api(op, **args)
    except ApiError as error:
        return error
    raise AssertionError(f"{op} succeeded unexpectedly: {result}")


def at_once(apis: list[Api], op: str, **args) -> list[str]:
    """Call ``op`` on every api at the same moment (a barrier); the sorted outcomes,
    "ok" or the error code of each."""
    barrier = threading.Barrier(len(apis))
    outcomes: list[str] = []

    def call(api: Api) -> None:
        barrier.wait(10)
        try:
            api(op, **args)
            outcomes.append("ok")
        except ApiError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=call, args=(api,)) for api in apis]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(outcomes)


def every_page(api: Api, op: str, key: str) -> list:
    """Every entry of a paged list (``DisplayItemsForSale`` -> "items", ...), page by page."""
    entries, after = [], None
    while True:
        page = api(op, **page_args(500, after))
        entries += page[key]
        after = page["next"]
        if after is None:
            return entries


def settling_rounds(market: Market, rounds: int = 1, timeout: float = 15.0) -> None:
    """Return once the buyer frontends' settling threads (``market.frontend.settling``)
    have gone ``rounds`` whole rounds more: each has listed what was left unfinished and
    settled it, purchases and then votes, that many times since the call. Instead of a
    sleep of a few rounds' length: this waits exactly as long as that takes.

    A round ends by listing the unfinished votes at the customer database
    (``RecordedVotes``, counted in its ``Stats``), then settling them; a thread may be
    anywhere in a round now, so each is waited for one listing more than ``rounds``."""
    settlers = sum(1 for proc in [market.buyer_server, *market.extra]
                   if proc.script == "buyer_server.py" and proc.proc.poll() is None)
    customer_db = Client(market.customer_db.address)
    try:
        def listings() -> int:
            return customer_db.call("Stats")["ops"].get("RecordedVotes", {}).get("ok", 0)

        target = listings() + (rounds + 1) * settlers
        assert wait_until(lambda: listings() >= target, timeout=timeout), \
            f"the settling threads did not go round {rounds} times within {timeout} s"
    finally:
        customer_db.close()


def stall(market: Market, database: ServiceProcess):
    """SIGSTOP one of ``market``'s databases (``sigstop``) and return once neither frontend
    answers from its copy of that database's data any more (within ``LEASE``)."""
    copy = "catalog" if database is market.product_db else "accounts"
    frontends = [market.seller(), market.buyer()]
    resume = sigstop(database)

    def out_of_use() -> bool:
        return not any(api("Stats")["copies"][copy]["fresh"] for api in frontends)
    assert wait_until(out_of_use, timeout=5)
    return resume


def sigstop(process: ServiceProcess):
    """SIGSTOP ``process`` until the returned function is called (SIGCONT). Returns once
    every thread has stopped: under load one may still serve a request a moment after."""
    pid = process.proc.pid
    os.kill(pid, signal.SIGSTOP)

    def every_thread_stopped() -> bool:
        return all(Path(task, "stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
                   for task in Path(f"/proc/{pid}/task").iterdir())

    assert wait_until(every_thread_stopped, timeout=5)
    return lambda: os.kill(pid, signal.SIGCONT)


def write_data_dir(path: Path, database: str, records: list[dict],
                   data_format: int | None = None) -> None:
    """A data directory holding ``records`` in its journal, written by hand as a database of
    format ``data_format`` (this version's by default) writes one."""
    path.mkdir(parents=True)
    marker = {"format": data_format or formats.CURRENT, "database": database}
    (path / "FORMAT").write_text(json.dumps(marker) + "\n")
    with open(path / "journal-0.jsonl", "w", encoding="utf-8") as journal:
        journal.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
