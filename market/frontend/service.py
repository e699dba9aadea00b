"""The base of both frontends: nothing of their own is kept; every write goes to the
databases, and reads are answered from copies the databases keep current.

``Frontend`` holds the account ops (``CreateAccount``, ``Login``, ``Logout``), the session
check both roles share (answered from the copy of the customer database while it may be),
``keyed``, the key and fingerprint every write to a database carries, and the two copies:
``catalog`` (the product database's items) and ``accounts`` (the customer database's
sellers' ratings and sessions), each kept by a follower (``market.replication``).
"""
from __future__ import annotations

import argparse
import secrets
import threading
import time
from typing import Any, Callable

from market.customer import api as customer_api
from market.customer.copy import AccountsCopy
from market.database.api import FOLLOW
from market.fields import CREDENTIALS, LOGIN_CREDENTIALS
from market.frontend.identity import MarketCheck
from market.frontend.passwords import PasswordHasher
from market.keys import (
    OWN_KEY_FINGERPRINT,
    card_print,
    fingerprint,
    frontend_key,
    step_key,
)
from market.net.client import Client
from market.net.service import ENVELOPE_FIELDS, Op, Request, Service
from market.product.catalog import Catalog
from market.replication.follower import Follower
from protocol import ApiError, RawResult


class Frontend(Service):
    """A stateless frontend: the account ops of one role, plus ``role_ops()``.

    Nothing is kept between requests but copies: the catalog, the sellers' ratings and the
    sessions live in the databases, and the copies (``catalog``, ``accounts``) answer only
    while the databases' leases say they are current (``start`` starts their followers).
    Passwords are hashed here (``PasswordHasher``); the database stores and compares hashes
    only. With a
    ``market_check``, every op but ``local_ops`` is refused while the two databases do
    not belong to one market.
    """

    role = ""
    envelope_fields = ENVELOPE_FIELDS | {"idempotency_key"}
    local_ops = frozenset({"Hello", "Stats"})  # answered without the databases
    market_check: MarketCheck | None = None
    # What card numbers are hashed with in fingerprints: the deployment secret (the same at
    # every frontend, so a resend elsewhere matches); without one, this fixed text.
    card_key = b"the open mode has no secret"

    def __init__(self, customer_db: Client, product_db: Client,
                 hasher: PasswordHasher | None = None) -> None:
        super().__init__()
        self.customer = customer_db
        self.product = product_db
        self.hasher = hasher or PasswordHasher()
        # The copies of the databases' followed data, in use while their followers keep
        # them current (else the databases are asked).
        self.catalog = Follower(Catalog(), "the product database")
        self.accounts = Follower(AccountsCopy(), "the customer database")
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
        """``Stats`` adds each database's pool and whether it answers, whether the two
        belong to one market, the passwords waiting to be hashed and whether each copy is
        in use (``fresh``)."""
        return {**super().stats(request), "password_queue": self.hasher.waiting,
                "pools": {"customer_db": self.customer.pool_stats(),
                          "product_db": self.product.pool_stats()},
                "databases": {"customer_db": self.customer.health.state(),
                              "product_db": self.product.health.state()},
                "one_market": self.market_check.one_market() if self.market_check else None,
                "copies": {"catalog": {"fresh": self.catalog.fresh()},
                           "accounts": {"fresh": self.accounts.fresh()}}}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this frontend's own flags."""

    def configure(self, args: argparse.Namespace) -> None:
        """Take this frontend's own flags."""

    def card_print(self, card_number: str) -> str:
        """A card number as a purchase's fingerprint sees it (``market.keys.card_print``)."""
        return card_print(self.card_key, card_number)

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
        from the copy without a round trip while it may answer for the session, else asked
        (and kept, when the database allows it)."""
        sessions = self.accounts.copy.sessions
        user_id = sessions.lookup(request.session) if self.accounts.fresh() else None
        if user_id is not None:
            return user_id
        generation, sent = sessions.generation(), time.monotonic()
        result = self.customer.call(customer_api.CHECK_SESSION, {
            "role": self.role, "follower": self.accounts.name}, request.session)
        sessions.keep(request.session, result["user_id"], result.get("cache_s", 0), sent,
                      generation)
        return result["user_id"]

    def start(self) -> None:
        """Start the followers that keep the copies current, each with a connection of its
        own to its database, greeted and checked like the pool's (``Client.dedicated``)."""
        self.start_follower(self.catalog, self.product.dedicated())
        self.start_follower(self.accounts, self.customer.dedicated())

    def start_follower(self, follower: Follower, database: Client) -> None:
        """Keep ``follower``'s copy current with a ``Follow`` long poll on ``database``, on a
        thread of its own."""
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
        return self.accounts.read(lambda copy: copy.ratings.rating(shown), ask)


def long_poll_ms(database: Client, wait: float) -> int:
    """How long (ms) a long poll on ``database`` may wait for news: ``wait``, but well inside
    the connection's timeout, so a quiet database is never taken for a dead one."""
    return int(min(wait, database.timeout / 3) * 1000)
