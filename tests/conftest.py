"""Fixtures that start the real services as processes on free ports."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from market.config import SAMPLE_CARD as CARD  # noqa: E402,F401  (passes every check)
from market.keys import fresh_key  # noqa: E402
from market.net.client import Client  # noqa: E402
from market.ops.launch import ServiceProcess  # noqa: E402
from market.paging import page_args  # noqa: E402
from protocol import ApiError  # noqa: E402


@dataclass
class Market:
    """The four services of one marketplace, and clients for the two frontends."""

    product_db: ServiceProcess
    customer_db: ServiceProcess
    seller_server: ServiceProcess
    buyer_server: ServiceProcess
    clients: list = field(default_factory=list)

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

    def stop(self) -> None:
        for client in self.clients:
            client.close()
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
                 secret_file: Path | None = None, db_timeout: float = 2.0) -> Market:
    """Start the four services on free ports; ``*_args`` are extra flags for one of them.

    With ``secret_file`` all four get ``--secret-file`` (the databases then
    serve only connections that prove they know it).
    """
    secret = ("--secret-file", str(secret_file)) if secret_file else ()
    product_db = ServiceProcess("product_db.py", *secret, *product_args).start()
    customer_db = ServiceProcess("customer_db.py", "--session-timeout", str(session_timeout),
                       *secret, *customer_args).start()
    dbs = ["--product-db", "%s:%d" % product_db.address,
           "--customer-db", "%s:%d" % customer_db.address, "--db-timeout", str(db_timeout),
           *secret]
    seller = ServiceProcess("seller_server.py", *dbs, *seller_args).start()
    buyer = ServiceProcess("buyer_server.py", *dbs, *buyer_args).start()
    return Market(product_db, customer_db, seller, buyer)


@pytest.fixture(scope="module")
def market():
    """One marketplace shared by a test module (tests use fresh usernames)."""
    m = start_market()
    yield m
    m.stop()


@pytest.fixture
def fresh_market():
    """A marketplace of its own for one test."""
    m = start_market()
    yield m
    m.stop()


@pytest.fixture
def seller(market, unique) -> Api:
    """A fresh seller of the module's market, logged in; ``seller_id`` set."""
    api = market.seller()
    api.seller_id = api.register(unique("seller"))
    return api


@pytest.fixture
def buyer(market, unique) -> Api:
    """A fresh buyer of the module's market, logged in; ``name`` and ``buyer_id`` set."""
    api = market.buyer()
    api.name = unique("buyer")
    api.buyer_id = api.register(api.name)
    return api


_counter = iter(range(1, 10 ** 9))


@pytest.fixture
def unique():
    """A function returning a fresh name with a prefix: unique('alice') -> 'alice7'."""
    return lambda prefix="user": f"{prefix}{next(_counter)}_{os.getpid() % 1000}"


def keyed() -> dict:
    """The ``key`` and ``fingerprint`` args of a keyed internal write, as a frontend sends
    them (a fresh key each call)."""
    return {"key": fresh_key(), "fingerprint": "0" * 32}


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def listing(seller: "Api", name: str = "thing", price: float = 1, quantity: int = 10) -> int:
    """List an item (category 4, no keywords) as ``seller``; returns its id."""
    return seller("RegisterItemForSale", name=name, category=4, keywords=[], condition="new",
                  price=price, quantity=quantity)["item_id"]


def units(api: "Api", item_id: int) -> int:
    """Units of ``item_id`` left, as a buyer sees them."""
    return api("GetItem", item_id=item_id)["item"]["quantity"]


def failure(api: "Api", op: str, **args) -> ApiError:
    """Call ``op`` expecting failure; return the error."""
    try:
        result = api(op, **args)
    except ApiError as error:
        return error
    raise AssertionError(f"{op} succeeded unexpectedly: {result}")


def at_once(apis: list["Api"], op: str, **args) -> list[str]:
    """Call ``op`` on every api at the same moment (a barrier); the sorted outcomes,
    "ok" or the error code of each."""
    barrier = threading.Barrier(len(apis))
    outcomes: list[str] = []

    def call(api: "Api") -> None:
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


def every_page(api: "Api", op: str, key: str) -> list:
    """Every entry of a paged list (``DisplayItemsForSale`` -> "items", ...), page by page."""
    entries, after = [], None
    while True:
        page = api(op, **page_args(500, after))
        entries += page[key]
        after = page["next"]
        if after is None:
            return entries


def stall(market: Market, database: ServiceProcess):
    """SIGSTOP one of ``market``'s databases (``sigstop``) and return once neither frontend
    answers from its copy of that database's data any more (within ``FEED_LEASE``)."""
    copy = "items" if database is market.product_db else "sellers"
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
