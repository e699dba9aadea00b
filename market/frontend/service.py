"""The base of both frontends: nothing of their own is kept; every write goes to the
databases, and reads are answered from copies the databases keep current.

``Frontend`` holds the account ops (``CreateAccount``, ``Login``, ``Logout``),
the session check both roles share (answered from a session lease, ``market.replication.leases``),
``keyed``, the key and fingerprint every write to a database carries, and the copies
of the catalog and of the sellers' ratings (``items``, ``sellers``: ``market.replication.feed``);
``PasswordHasher`` is where passwords are hashed (queued, one hash per core);
``frontend_main`` parses the flags and starts one.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import hashlib
import os
import secrets
import threading
import time
from typing import Any, Callable

from market.config import (
    DEFAULT_CUSTOMER_DB_PORT,
    DEFAULT_DB_POOL,
    DEFAULT_DB_TIMEOUT,
    DEFAULT_HASH_COST,
    DEFAULT_HOST,
    DEFAULT_PRODUCT_DB_PORT,
    HASH_COST_MAX,
    HASH_COST_MIN,
)
from market.customer import api as customer_api
from market.customer.ratings import RatingsCopy
from market.fields import CREDENTIALS, LOGIN_CREDENTIALS
from market.frontend.identity import MarketCheck
from market.keys import OWN_KEY_FINGERPRINT, fingerprint, frontend_key, step_key
from market.net.client import Client, parse_address
from market.net.flags import configure_logging, env_default, service_parser
from market.net.internal import FOLLOW
from market.net.secret import read_secret
from market.net.server import serve
from market.net.service import ENVELOPE_FIELDS, Op, Request, Service
from market.product.catalog import Catalog
from market.replication.feed import Follower
from market.replication.leases import SessionCache
from protocol import ApiError, RawResult


class PasswordHasher:
    """scrypt, queued first come, first served, at most one hash per core at once.

    Hashing is deliberately slow, so it lives in the frontends, which can be
    multiplied across hosts, not in the one customer database. The executor's
    queue is FIFO; memory is bounded by the workers (16 MiB each at cost 14),
    not by the number of clients waiting.
    """

    def __init__(self, cost: int = DEFAULT_HASH_COST, workers: int | None = None) -> None:
        self.cost = cost
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, thread_name_prefix="scrypt")
        # Guards ``waiting``: the hashes asked for whose hashing has not started.
        self._lock = threading.Lock()
        self.waiting = 0

    def hash(self, password: str, salt: bytes, cost: int | None = None) -> bytes:
        """The password's hash with ``salt`` at ``cost`` (this hasher's own by default)."""
        with self._lock:
            self.waiting += 1
        return self._pool.submit(self._hash, password, salt, cost or self.cost).result()

    def _hash(self, password: str, salt: bytes, cost: int) -> bytes:
        with self._lock:
            self.waiting -= 1
        return scrypt(password, salt, cost)


def scrypt(password: str, salt: bytes, cost: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2 ** cost, r=8, p=1, dklen=32,
                          maxmem=256 << 20)


def return_big_blocks_to_the_system() -> None:
    """Make glibc give each scrypt's 16 MiB back when the hash is done.

    Otherwise glibc's growing mmap threshold parks one such block in each of
    its per-thread arenas for good. A no-op where the C library has no ``mallopt``.
    """
    m_mmap_threshold = -3
    try:
        ctypes.CDLL(None).mallopt(m_mmap_threshold, 1 << 20)
    except (OSError, AttributeError):
        pass


class Frontend(Service):
    """A stateless frontend: the account ops of one role, plus ``role_ops()``.

    Nothing is kept between requests but copies: sessions, the catalog and the sellers'
    ratings live in the databases, and the copies (``sessions``, ``items``, ``sellers``)
    answer only while the databases' leases say they are current. Passwords are hashed
    here (``PasswordHasher``); the database stores and compares hashes only. With a
    ``market_check``, every op but ``local_ops`` is refused while the two databases do
    not belong to one market.
    """

    role = ""
    envelope_fields = ENVELOPE_FIELDS | {"idempotency_key"}
    local_ops = frozenset({"Hello", "Stats"})  # answered without the databases
    market_check: MarketCheck | None = None

    def __init__(self, customer_db: Client, product_db: Client,
                 hasher: PasswordHasher | None = None) -> None:
        super().__init__()
        self.customer = customer_db
        self.product = product_db
        self.hasher = hasher or PasswordHasher()
        self.sessions = SessionCache()  # leased sessions, while start_watching's thread runs
        # Copies of the product database's catalog and the customer database's sellers'
        # ratings, fresh while follow's threads keep them so (else the databases are asked).
        self.items = Follower(Catalog())
        self.sellers = Follower(RatingsCopy())
        self.ops.update({
            "CreateAccount": Op(self.create_account, CREDENTIALS, needs_session=False,
                                keyed=True),
            "Login": Op(self.login, LOGIN_CREDENTIALS, needs_session=False),
            "Logout": Op(self.logout),
            **self.role_ops(),
        })
        for name, op in self.ops.items():
            if name not in self.local_ops:
                op.handler = self._guarded(op.handler)

    def role_ops(self) -> dict[str, Op]:
        raise NotImplementedError

    def _guarded(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``handler`` as every op that needs the databases runs it: only while both
        belong to one market (checked after the fields and the session, as before), and
        never telling a request with the client's idempotency key ``unavailable``
        ("nothing changed"): it may be a resend of one that took effect, so what this
        try could not do is ``deadline_exceeded``, and a later resend tells the outcome.
        """
        def checked(request: Request, **args: Any) -> Any:
            try:
                self.require_one_market()
                return handler(request, **args)
            except ApiError as error:
                if error.code != "unavailable" or not request.idempotency_key:
                    raise
                raise ApiError("deadline_exceeded", "This try changed nothing, but an earlier "
                               "send with this idempotency_key may have: " + error.message
                               + " Resend it with the same key to learn the outcome.") from None
        return checked

    def require_one_market(self) -> None:
        """Raise ``unavailable`` unless both databases belong to one market (background
        work that changes the databases asks too)."""
        if self.market_check is not None:
            self.market_check.require()

    def stats(self, request: Request) -> dict:
        """``Stats`` adds each database's pool, the passwords waiting to be hashed and
        whether each copy is in use (``fresh``)."""
        return {**super().stats(request), "password_queue": self.hasher.waiting,
                "pools": {"customer_db": self.customer.pool_stats(),
                          "product_db": self.product.pool_stats()},
                "copies": {"items": {"fresh": self.items.fresh()},
                           "sellers": {"fresh": self.sellers.fresh()}}}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this frontend's own flags."""

    def configure(self, args: argparse.Namespace) -> None:
        """Take this frontend's own flags."""

    @staticmethod
    def keyed(request: Request, args: dict) -> dict:
        """The ``key`` and ``fingerprint`` args of the database write behind a public write:
        the client's idempotency_key (else one of the frontend's own, ``frontend_key``),
        and what the public op asked. A key of the frontend's own is used for this one
        request only, so it has nothing to be told apart from: its fingerprint is
        ``OWN_KEY_FINGERPRINT``, not hashed per write."""
        if not request.idempotency_key:
            return {"key": frontend_key(), "fingerprint": OWN_KEY_FINGERPRINT}
        return {"key": request.idempotency_key, "fingerprint": fingerprint(request.op, args)}

    def create_account(self, request: Request, username: str, password: str) -> dict:
        """Hash the password, let the database store the account once per key.

        With the client's key the salt is derived from it, so a resend with the same
        password makes the same hash (the fingerprint covers the hash, never the
        password); another password is another request: ``conflict``.
        """
        key = request.idempotency_key
        salt = (bytes.fromhex(step_key(key, f"salt/{self.role}/{username}")) if key
                else secrets.token_bytes(16))
        digest = self.hasher.hash(password, salt)
        result = self.customer.call(customer_api.CREATE_ACCOUNT, {
            "role": self.role, "username": username, "salt": salt.hex(),
            "hash": digest.hex(), "cost": self.hasher.cost,
            **self.keyed(request, {"username": username, "hash": digest.hex()})})
        return {f"{self.role}_id": result["user_id"]}

    def login(self, request: Request, username: str, password: str) -> dict:
        """Fetch the account's salt, hash here, let the database compare.

        An unknown name gets a made-up salt and is hashed all the same, so it
        costs what a known one costs.
        """
        account = {"role": self.role, "username": username}
        salt = self.customer.call(customer_api.GET_SALT, account)
        digest = self.hasher.hash(password, bytes.fromhex(salt["salt"]), salt["cost"])
        result = self.customer.call(customer_api.LOGIN, {**account, "hash": digest.hex()})
        return {"session": result["session"], f"{self.role}_id": result["user_id"]}

    def logout(self, request: Request) -> dict:
        return self.customer.call(customer_api.LOGOUT, {"role": self.role}, request.session)

    def user_id(self, request: Request) -> int:
        """The id behind the request's session (checked and refreshed), or invalid_session:
        from a lease in its first half without a round trip, else asked (and leased)."""
        user_id = self.sessions.lookup(request.session)
        if user_id is not None:
            return user_id
        generation, sent = self.sessions.generation(), time.monotonic()
        args = {"role": self.role}
        if self.sessions.watching:
            args["holder"] = self.sessions.holder
        result = self.customer.call(customer_api.CHECK_SESSION, args, request.session)
        self.sessions.keep(request.session, result["user_id"], result.get("lease_s", 0), sent,
                           generation)
        return result["user_id"]

    def start_watching(self, watcher: Client) -> None:
        """Keep a ``WatchSessions`` long poll open on the customer database through
        ``watcher`` (a connection of its own, outside the pool), so that sessions may be
        leased (``market.replication.leases``)."""
        def watch(holder: str, epoch: str, seen: int, wait: float) -> dict:
            return watcher.call(customer_api.WATCH_SESSIONS, {
                "holder": holder, "epoch": epoch, "seen": seen,
                "wait_ms": long_poll_ms(watcher, wait)})
        threading.Thread(target=self.sessions.watch_forever, args=(watch,),
                         name="session-watch", daemon=True).start()

    def follow(self, follower: Follower, database: Client) -> None:
        """Keep ``follower``'s copy current with a ``Follow`` long poll on ``database`` (a
        connection of its own, outside the pool), on a thread of its own."""
        def poll(name: str, epoch: str, seen: int, after: int | None, wait: float) -> dict:
            args = {"follower": name, "epoch": epoch, "seen": seen,
                    "wait_ms": long_poll_ms(database, wait)}
            if after is not None:
                args["after"] = after
            return database.call(FOLLOW, args)
        threading.Thread(target=follower.follow_forever, args=(poll,), name="follow",
                         daemon=True).start()

    def seller_rating(self, request: Request, seller_id: int | None) -> RawResult:
        """The rating of ``seller_id`` (of the session's seller if None) from the copy,
        else asked."""
        user_id = self.user_id(request)
        shown = user_id if seller_id is None else seller_id

        def ask() -> RawResult:
            return self.customer.call_raw(customer_api.GET_SELLER_RATING, {
                "role": self.role, "seller_id": shown}, request.session)
        return self.sellers.read(lambda copy: copy.rating(shown), ask)


def long_poll_ms(database: Client, wait: float) -> int:
    """How long (ms) a long poll on ``database`` may wait for news: ``wait``, but well inside
    the connection's timeout, so a quiet database is never taken for a dead one."""
    return int(min(wait, database.timeout / 3) * 1000)


def frontend_main(frontend: type[Frontend], description: str, env_prefix: str, port: int,
                  argv: list[str] | None = None) -> None:
    parser = service_parser(description, env_prefix, port)
    env_default(parser, "--customer-db", "CUSTOMER_DB_ADDR",
                f"{DEFAULT_HOST}:{DEFAULT_CUSTOMER_DB_PORT}",
                "customer database HOST:PORT", type=parse_address)
    env_default(parser, "--product-db", "PRODUCT_DB_ADDR",
                f"{DEFAULT_HOST}:{DEFAULT_PRODUCT_DB_PORT}",
                "product database HOST:PORT", type=parse_address)
    env_default(parser, "--db-timeout", "DB_TIMEOUT", DEFAULT_DB_TIMEOUT,
                "seconds to wait for a database reply", type=float)
    env_default(parser, "--db-pool", "DB_POOL", DEFAULT_DB_POOL,
                "most connections kept open to each database (requests wait for a free one); "
                "a database's --max-connections must cover the pools of all its frontends",
                type=int)
    env_default(parser, "--hash-cost", "HASH_COST", DEFAULT_HASH_COST,
                "scrypt cost of new passwords, as log2 of its n "
                f"({HASH_COST_MIN} to {HASH_COST_MAX}); lower is faster and weaker, for tests",
                type=int,
                choices=range(HASH_COST_MIN, HASH_COST_MAX + 1), metavar="N")
    frontend.add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(frontend.kind, args.log_level)
    secret = read_secret(args.secret_file)

    def database(address: tuple[str, int]) -> Client:
        return Client(address, args.db_timeout, secret=secret, pool_size=max(1, args.db_pool),
                      deadlines=True)

    return_big_blocks_to_the_system()
    customer, product = database(args.customer_db), database(args.product_db)
    service = frontend(customer, product, PasswordHasher(args.hash_cost))
    service.market_check = MarketCheck(customer, product)
    service.configure(args)
    service.start_watching(database(args.customer_db))
    service.follow(service.items, database(args.product_db))
    service.follow(service.sellers, database(args.customer_db))
    serve(service, args)
