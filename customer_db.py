"""Customer database service (default port 9002): accounts, sessions, carts, purchases, votes.

Internal ops, spoken only by the frontends, declared in ``market.customer.api``. ``CustomerDB``
is the op table, the sweeper and the handlers over ``market.customer.data.CustomerData``
(the state, and the appliers of its journal records); the rules live in its pieces:
``market.customer.accounts`` (accounts, sessions), ``.carts``, ``.purchases`` (the purchase
state machine) and ``.votes`` (the vote state machine). Each handler checks under the
database's lock, then makes its change as a record (``Database.change``), so replaying the
journal after a restart runs exactly the code that ran live; a write returns what its reply
acknowledges (``Acknowledged``): a session's end, or a seller's rating, reaches every
frontend's copy before the reply leaves.
"""
from __future__ import annotations

import argparse
import secrets
import threading
import time
from typing import Callable

from market.config import (
    DEFAULT_CUSTOMER_DB_PORT,
    DEFAULT_PURCHASE_TIMEOUT,
    DEFAULT_SESSION_TIMEOUT,
    LEASE,
    SESSION_CACHE_SHARE,
)
from market.customer import api
from market.customer.accounts import Role
from market.customer.carts import EMPTY, Cart, added, removed
from market.customer.data import CustomerData
from market.customer.purchases import PurchaseState, purchase_record
from market.database.main import database_main, database_parser
from market.database.service import Database
from market.keys import step_key
from market.net.flags import env_default
from market.net.service import Request
from market.replication.feed import Acknowledged
from protocol import ApiError, RawResult


class CustomerDB(Database):
    name = "customer database"
    kind = "customer_db"

    def __init__(self, session_timeout: float = DEFAULT_SESSION_TIMEOUT,
                 purchase_timeout: float = DEFAULT_PURCHASE_TIMEOUT) -> None:
        self.session_timeout = session_timeout
        self.purchase_timeout = purchase_timeout
        # How long a frontend holding a lease may answer a session's checks itself.
        self.session_cache = min(LEASE / 2, session_timeout * SESSION_CACHE_SHARE)
        super().__init__()
        self.add_ops({
            api.CREATE_ACCOUNT: self.create_account, api.GET_SALT: self.get_salt,
            api.LOGIN: self.login, api.LOGOUT: self.logout,
            api.CHECK_SESSION: self.check_session, api.GET_SELLER_RATING: self.get_seller_rating,
            api.GET_CART: self.get_cart, api.ADD_TO_CART: self.add_to_cart,
            api.REMOVE_FROM_CART: self.remove_from_cart, api.SAVE_CART: self.save_cart,
            api.CLEAR_CART: self.clear_cart, api.START_PURCHASE: self.start_purchase,
            api.COMMIT_PURCHASE: self.commit_purchase,
            api.RESOLVE_PURCHASES: self.resolve_purchases, api.GET_PURCHASE: self.get_purchase,
            api.GET_PURCHASES: self.get_purchases, api.RECORD_VOTE: self.record_vote,
            api.RECORDED_VOTES: self.recorded_votes, api.SETTLE_VOTES: self.settle_votes,
        })

    def make_data(self, publish: Callable[[dict], int]) -> CustomerData:
        return CustomerData(self.session_timeout, publish)

    def start(self) -> None:
        super().start()
        threading.Thread(target=sweep_forever, args=(self,), name="sweeper",
                         daemon=True).start()

    def _session(self, request: Request, role: Role) -> int:
        """The user id of the live session of ``role`` behind the request, marked used (hold
        the lock); one found expired is ended, and ``invalid_session``."""
        session = self.data.sessions.get(request.session, role)
        now = time.monotonic()
        if self.data.sessions.expired(session, now):
            self.change({"kind": "logout", "token": session.token})
            raise ApiError("invalid_session", "The session has expired; log in again.")
        self.data.sessions.touch(session, now)
        return session.user_id

    # -- accounts and sessions ----------------------------------------------------------------

    def create_account(self, request: Request, role: str, username: str, salt: bytes,
                       hash: bytes, cost: int, key: str, fingerprint: str) -> Acknowledged:
        """Create the account once per ``key`` (scoped to the role and name)."""
        def write(keyed: dict) -> Acknowledged:
            user_id = self.data.accounts.new_id(Role(role), username)
            return self.change({"kind": "account", "role": role, "user_id": user_id,
                                "name": username, "salt": salt.hex(), "hash": hash.hex(),
                                "cost": cost, "keyed": keyed})
        with self.lock:
            return self.keyed_write(request, f"{role}-name:{username}", key, fingerprint, write)

    def get_salt(self, request: Request, role: str, username: str) -> dict:
        return self.data.accounts.salt(Role(role), username)

    def login(self, request: Request, role: str, username: str, hash: bytes) -> Acknowledged:
        """Begin a session (``secrets.token_urlsafe``); an account with its fill of sessions
        ends its least recently used one first (its end reaches every copy before the
        reply). ``Accounts.verify`` compares the hash with ``hmac.compare_digest``."""
        account = self.data.accounts.verify(Role(role), username, hash)
        token = secrets.token_urlsafe(32)
        with self.writing(request):
            least_recent = self.data.sessions.least_recent_over_cap(account.role,
                                                                    account.user_id)
            ended = self.change({"kind": "logout", "token": least_recent}).change \
                if least_recent else 0
            self.change({"kind": "login", "token": token, "role": role,
                         "user_id": account.user_id})
        return Acknowledged({"session": token, "user_id": account.user_id}, ended)

    def logout(self, request: Request, role: str) -> Acknowledged:
        """End the session; the reply leaves once no frontend's copy answers for it."""
        with self.writing(request):
            self._session(request, Role(role))
            return self.change({"kind": "logout", "token": request.session})._replace(result={})

    def check_session(self, request: Request, role: str, follower: str | None) -> dict:
        """The session's user id, marked used. A ``follower`` holding a lease on this
        database's feed may answer the session's checks itself for ``cache_s`` seconds (its
        end would reach it first): the session counts as used until then, so it may expire
        that much late, never early."""
        with self.lock:
            user_id = self._session(request, Role(role))
            if follower is None or not self.feed.holds(follower):
                return {"user_id": user_id}
            self.data.sessions.touch(self.data.sessions.get(request.session, Role(role)),
                                     time.monotonic() + self.session_cache)
            return {"user_id": user_id, "cache_s": self.session_cache}

    def get_seller_rating(self, request: Request, role: str, seller_id: int | None) -> dict:
        """The rating of ``seller_id``, or (for a seller only) of the session's seller."""
        with self.lock:
            user_id = self._session(request, Role(role))
            if seller_id is None and role != Role.SELLER:
                raise ApiError("bad_request", "Missing field 'seller_id' in args.")
            return self.data.seller_rating(user_id if seller_id is None else seller_id)

    # -- carts ------------------------------------------------------------------------------

    def get_cart(self, request: Request) -> dict:
        with self.lock:
            self._session(request, Role.BUYER)
            return {"cart": self.data.carts.of(request.session).lines()}

    def add_to_cart(self, request: Request, item_id: int, quantity: int, available: int,
                    key: str, fingerprint: str) -> Acknowledged:
        return self._change_cart(request, key, fingerprint, lambda cart: added(
            cart, item_id, quantity, available,
            self.data.purchases.held_items(request.session)))

    def remove_from_cart(self, request: Request, item_id: int, quantity: int, key: str,
                         fingerprint: str) -> Acknowledged:
        return self._change_cart(request, key, fingerprint,
                                 lambda cart: removed(cart, item_id, quantity))

    def clear_cart(self, request: Request, key: str, fingerprint: str) -> Acknowledged:
        return self._change_cart(request, key, fingerprint, lambda cart: EMPTY)

    def save_cart(self, request: Request, key: str, fingerprint: str) -> Acknowledged:
        return self._cart_write(request, key, fingerprint,
                                lambda: {"kind": "save", "token": request.session})

    def _change_cart(self, request: Request, key: str, fingerprint: str,
                     change: Callable[[Cart], Cart]) -> Acknowledged:
        return self._cart_write(request, key, fingerprint, lambda: {
            "kind": "cart", "token": request.session,
            "cart": change(self.data.carts.of(request.session)).lines()})

    def _cart_write(self, request: Request, key: str, fingerprint: str,
                    record: Callable[[], dict]) -> Acknowledged:
        """Make the change ``record()`` says (it may refuse), once per ``key`` of the buyer;
        the reply is the session's cart after it (for a resend: as it is now)."""
        with self.lock:
            buyer_id = self._session(request, Role.BUYER)
            done = self.keyed_write(request, f"buyer:{buyer_id}", key, fingerprint,
                                    lambda keyed: self.change({**record(), "keyed": keyed}))
            return done._replace(result={"cart": self.data.carts.of(request.session).lines()})

    # -- purchases: started here, units taken in the product database, then committed --------

    def start_purchase(self, request: Request, key: str, fingerprint: str,
                       card_problem: str) -> Acknowledged:
        """Move the session cart's lines into a purchase started under the id derived from
        the buyer's ``key``, once per key, and say where that purchase is now."""
        with self.lock:
            buyer_id = self._session(request, Role.BUYER)
            scope = f"buyer:{buyer_id}"

            def write(keyed: dict) -> Acknowledged:
                purchase_id = step_key(key, f"{scope}/purchase")
                lines = self.data.purchases.to_start(
                    purchase_id, self.data.carts.of(request.session), card_problem)
                return self.change({"kind": "purchase_started", "token": request.session,
                                    "purchase_id": purchase_id, "buyer_id": buyer_id,
                                    "lines": lines, "keyed": keyed})
            started = self.keyed_write(request, scope, key, fingerprint, write)
            return started._replace(
                result=self.data.purchases.progress(started.result["purchase_id"]))

    def commit_purchase(self, request: Request, purchase_id: str, lines: list[dict],
                        card_last4: str) -> Acknowledged:
        """Record a started purchase whose units the product database has taken; a resent
        commit gets the first record ``again`` (even past the deadline)."""
        with self.lock:
            purchase = self.data.purchases.get(purchase_id)
            if purchase is not None and purchase.state is PurchaseState.COMMITTED:
                done = self.again(purchase.view)
            else:
                request.check_deadline()
                self.data.purchases.check_commit(purchase_id, lines)
                done = self.change({"kind": "purchase_committed",
                                    "purchase": purchase_record(purchase_id, lines, card_last4)})
        return done._replace(result=RawResult(b'{"purchase":' + done.result + b"}"))

    def resolve_purchases(self, request: Request, purchase_ids: list[str],
                          reason: dict | None) -> Acknowledged:
        """The verdict on purchases: ``committed`` ids (acknowledged ``again``: their commits
        may still be on their way to the copies); every other id is ``cancelled`` from now on
        (a started one's lines go back into its cart). ``reason``:
        the final error a resend of a purchase cancelled now is told (in memory only)."""
        with self.writing(request):
            committed, cancelled, fresh = self.data.purchases.verdict(purchase_ids)
            if fresh:
                keys = self.data.purchases.keys_of(fresh)
                self.change({"kind": "purchases_cancelled", "purchase_ids": fresh})
                for keyed in keys if reason else ():
                    self.outcomes.remember(keyed, error=(reason["code"], reason["message"]))
            return self.again({"committed": committed, "cancelled": cancelled})

    def get_purchase(self, request: Request, purchase_id: str) -> RawResult:
        with self.lock:
            buyer_id = self._session(request, Role.BUYER)
            view = self.data.purchases.bought_by(purchase_id, buyer_id).view
            return RawResult(b'{"purchase":' + view + b"}")

    def get_purchases(self, request: Request, limit: int, after: str | None) -> RawResult:
        """One page of the buyer's purchases, oldest first, and ``items_purchased``."""
        with self.lock:
            buyer_id = self._session(request, Role.BUYER)
            return RawResult(self.data.purchases.page(buyer_id, limit, after))

    # -- votes: recorded here, counted or refused by the product database's verdict ---------

    def record_vote(self, request: Request, item_id: int, vote: str, key: str,
                    fingerprint: str) -> Acknowledged:
        """Record a buyer's vote on an item it bought, under its vote key (one per buyer, item
        and attempt: ``market.keys.vote_key``), once per client ``key``, and say where that
        vote is now (``state`` null: refused)."""
        with self.lock:
            buyer_id = self._session(request, Role.BUYER)
            scope = f"buyer:{buyer_id}"

            def write(keyed: dict) -> Acknowledged:
                self.data.purchases.bought_from(buyer_id, item_id)
                self.data.votes.check_new(buyer_id, item_id)
                return self.change({"kind": "vote_recorded", "buyer_id": buyer_id,
                                    "item_id": item_id, "vote": vote,
                                    "key": self.data.votes.next_key(buyer_id, item_id),
                                    "keyed": keyed})
            done = self.keyed_write(request, scope, key, fingerprint, write)
            vote_key, voted = done.result["vote_key"], done.result["item_id"]
            state = self.data.votes.state(buyer_id, voted, vote_key)
            return done._replace(result={**done.result, "state": state})

    def recorded_votes(self, request: Request, older_than: int, limit: int) -> dict:
        """Keys of votes recorded ``older_than`` seconds ago or more, not yet settled."""
        with self.lock:
            return {"keys": self.data.votes.recorded_longer_than(older_than, limit)}

    def settle_votes(self, request: Request, committed: list[str],
                     cancelled: list[str]) -> Acknowledged:
        """Apply the product database's verdicts: count the recorded votes of ``committed``
        for their sellers, drop those of ``cancelled`` (their buyers may vote again).
        Verdicts applied already are acknowledged ``again``."""
        with self.writing(request):
            committed = self.data.votes.settling(committed)
            cancelled = self.data.votes.settling(cancelled)
            if committed or cancelled:
                return self.change({"kind": "votes_settled", "counted": committed,
                                    "refused": cancelled})._replace(result={})
            return self.again({})


def sweep_forever(db: CustomerDB) -> None:
    """Forever: end idle sessions, cancel purchases left unfinished (each sweep stored before
    the next, so an expired session stays expired after a crash; a standby replica leaves
    that to the active one), and forget the outcomes of keys past their time."""
    interval = min(1.0, db.session_timeout / 4)
    while True:
        time.sleep(interval)
        now = time.monotonic()
        try:
            with db.lock:
                if db.storage.writable():
                    for token in db.data.sessions.idle(now):
                        db.change({"kind": "logout", "token": token})
                    stale = db.data.purchases.stale(now, db.purchase_timeout)
                    if stale:
                        db.change({"kind": "purchases_cancelled", "purchase_ids": stale})
                db.outcomes.forget_expired()
            db.storage.sync()
        except ApiError:  # a replica deposed meanwhile: its state is loaded anew
            continue


def main(argv: list[str] | None = None) -> None:
    parser = database_parser("Customer database: accounts, sessions, carts, purchases, votes.",
                             "CUSTOMER_DB", DEFAULT_CUSTOMER_DB_PORT)
    env_default(parser, "--session-timeout", "SESSION_TIMEOUT", DEFAULT_SESSION_TIMEOUT,
                "seconds of inactivity after which a session is removed", type=float)
    env_default(parser, "--purchase-timeout", "PURCHASE_TIMEOUT", DEFAULT_PURCHASE_TIMEOUT,
                "seconds after which a purchase that was started but neither committed nor "
                "cancelled is cancelled (its lines go back into the cart)", type=float)
    # For tests: let a frontend answer a session's checks itself for this long.
    parser.add_argument("--test-session-cache", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    database = CustomerDB(args.session_timeout, args.purchase_timeout)
    if args.test_session_cache is not None:
        database.session_cache = args.test_session_cache
    database_main(database, args)


if __name__ == "__main__":
    main()
