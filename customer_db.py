"""Customer database service (default port 9002): accounts, sessions, carts, purchases, votes.

Internal ops, spoken only by the frontends, declared in ``market.customer.api``.
``CustomerDB`` is the op table, the lock, the sweeper and the journal wiring
(with ``PurchaseAndVoteOps``, its ops of purchases and votes);
``CustomerData`` holds the state and applies each journal record kind to it; the
state and its rules live in ``market.customer.accounts`` (accounts, sessions),
``market.customer.carts``, ``market.customer.purchases`` (the purchase state machine) and
``market.customer.votes`` (the vote state machine). Every change is a journal record
applied by ``Database.change``, so replaying the journal after a restart runs
exactly the code that ran live.
"""
from __future__ import annotations

import argparse
import secrets
import threading
import time
from typing import Any, Callable

from market.config import (
    DEFAULT_CUSTOMER_DB_PORT,
    DEFAULT_PURCHASE_TIMEOUT,
    DEFAULT_SESSION_TIMEOUT,
    FEED_PAGE,
)
from market.customer import api
from market.customer.accounts import Accounts, Role, Sessions
from market.customer.carts import EMPTY, Cart, Carts, added, removed
from market.customer.purchases import Purchases, PurchaseState, purchase_record
from market.customer.ratings import seller_rating
from market.customer.votes import Thumb, Vote, Votes
from market.database.service import Database, database_main, database_parser
from market.keys import KeyedOutcomes, step_key
from market.net.flags import env_default
from market.net.service import Request
from market.replication.feed import ChangeFeed
from market.replication.leases import Leases, lease_length
from protocol import ApiError, RawResult


class CustomerData:
    """The customer database's five pieces, and what each journal record kind does to them
    (``appliers``): the only code that changes them, live and on replay alike.

    Not thread-safe: ``CustomerDB`` holds its lock around all of it.
    """

    def __init__(self, session_timeout: float, outcomes: KeyedOutcomes,
                 feed: ChangeFeed) -> None:
        # Invariants across the pieces: every session names an existing account, and
        # every buyer session has a cart; a cart line is in its session's cart or in
        # one started purchase, never both; a committed purchase's lines have left
        # its buyer's saved cart; a vote is on an item its buyer bought, for the
        # seller it was bought from.
        self.accounts = Accounts()
        self.sessions = Sessions(session_timeout)
        self.carts = Carts()
        self.purchases = Purchases()
        self.votes = Votes()
        # The database's first outcomes of keyed writes: the appliers of keyed records
        # (account, cart, save) keep theirs. A cart change keeps no result: a resend is
        # answered with the session's cart as it is then (so a key costs no cart copy).
        self.outcomes = outcomes
        self.feed = feed  # the sellers' ratings, as they move, to the frontends' copies
        self.appliers: dict[str, Callable[[dict], None]] = {
            "account": self._account_created, "login": self._login, "logout": self._logout,
            "cart": self._cart_changed, "save": self._cart_saved,
            "purchase_started": self._started, "purchase_committed": self._committed,
            "purchases_cancelled": self._cancelled, "vote_recorded": self._vote_recorded,
            "votes_settled": self._votes_settled,
        }

    def seller_rating(self, seller_id: int) -> dict:
        return seller_rating(self.accounts, self.votes, self.purchases, seller_id)

    def _publish_ratings(self, seller_ids: list[int]) -> None:
        for seller_id in sorted(set(seller_ids)):
            if self.accounts.get(Role.SELLER, seller_id) is not None:
                self.feed.publish(self.seller_rating(seller_id))

    def sellers_page(self, after: int) -> tuple[list[dict], int | None]:
        """A snapshot page of the sellers' ratings (``market.replication.feed``)."""
        ids = [i for i in self.accounts.ids(Role.SELLER) if i > after]
        shown = ids[:FEED_PAGE]
        more = len(ids) > len(shown)
        return [self.seller_rating(i) for i in shown], shown[-1] if more else None

    def _account_created(self, r: dict) -> None:
        self.accounts.add(Role(r["role"]), r)
        if r["role"] == Role.SELLER:
            self._publish_ratings([r["user_id"]])
        self.outcomes.keep(r, {"user_id": r["user_id"]})

    def _cart_changed(self, r: dict) -> None:
        self.carts.set(r["token"], Cart(r["cart"]))
        self.outcomes.keep(r, {})

    def _cart_saved(self, r: dict) -> None:
        self.carts.save(r["token"])
        self.outcomes.keep(r, {})

    def _login(self, r: dict) -> None:
        self.sessions.begin(r["token"], Role(r["role"]), r["user_id"], time.monotonic())
        if r["role"] == Role.BUYER:
            self.carts.open(r["token"], r["user_id"])

    def _logout(self, r: dict) -> None:
        self.sessions.end(r["token"])
        self.carts.close(r["token"])

    def _started(self, r: dict) -> None:
        self.purchases.start(r["purchase_id"], r["token"], r["buyer_id"], r["lines"],
                             r.get("keyed"))
        self.carts.set(r["token"], EMPTY)
        self.outcomes.keep(r, {"purchase_id": r["purchase_id"]})

    def _committed(self, r: dict) -> None:
        purchase = self.purchases.commit(r["purchase"])
        self.carts.take_bought(purchase.buyer_id, purchase.lines)
        self._publish_ratings([line["seller_id"] for line in r["purchase"]["lines"]])

    def _votes_settled(self, r: dict) -> None:
        sellers = self.votes.sellers_of(r["counted"])
        self.votes.settle(r["counted"], r["refused"])
        self._publish_ratings(sellers)

    def _cancelled(self, r: dict) -> None:
        for purchase in self.purchases.cancel(r["purchase_ids"]):
            self.carts.put_back(purchase.token, purchase.lines)

    def _vote_recorded(self, r: dict) -> None:
        seller_id = self.purchases.bought_from(r["buyer_id"], r["item_id"])
        self.votes.record(Vote(r["buyer_id"], r["item_id"], seller_id, Thumb(r["vote"]),
                               r["key"]))
        self.outcomes.keep(r, {"vote_key": r["key"], "item_id": r["item_id"]})

    def parts(self) -> dict:
        """The pieces by their snapshot names, in the order a restore needs (accounts first)."""
        return {"accounts": self.accounts, "sessions": self.sessions, "carts": self.carts,
                "purchases": self.purchases, "votes": self.votes}

    def stats(self) -> dict:
        return {"accounts": len(self.accounts), "live_sessions": len(self.sessions),
                **self.purchases.counts()}


class PurchaseAndVoteOps:
    """The customer database's ops of purchases and votes, the writes that span both
    databases: each moves a state machine kept here (``market.customer.purchases``,
    ``market.customer.votes``). A part of ``CustomerDB``, whose lock, session check
    (``_session``), ``keyed_write`` and ``change`` they use like its other ops."""

    # -- purchases ------------------------------------------------------------

    def start_purchase(self, request: Request, key: str, fingerprint: str,
                       card_problem: str) -> dict:
        """Move the session cart's lines into a purchase started under the id derived from
        the buyer's ``key``, once per key, and say where that purchase is now."""
        with self._lock:
            buyer_id = self._session(request, Role.BUYER)
            scope = f"buyer:{buyer_id}"

            def write(keyed: dict) -> dict:
                purchase_id = step_key(key, f"{scope}/purchase")
                lines = self.purchases.to_start(purchase_id, self.carts.of(request.session),
                                                card_problem)
                self.change({"kind": "purchase_started", "token": request.session,
                             "purchase_id": purchase_id, "buyer_id": buyer_id, "lines": lines,
                             "keyed": keyed})
                return {"purchase_id": purchase_id}
            started = self.keyed_write(request, scope, key, fingerprint, write)
            return self.purchases.progress(started["purchase_id"])

    def commit_purchase(self, request: Request, purchase_id: str, lines: list[dict],
                        card_last4: str) -> RawResult:
        """Record a started purchase whose units the product database has taken; a resent
        commit gets the first record (even past the deadline)."""
        with self._lock:
            if self.purchases.state(purchase_id) is not PurchaseState.COMMITTED:
                request.check_deadline()
                self.purchases.check_commit(purchase_id, lines)
                self.change({"kind": "purchase_committed",
                             "purchase": purchase_record(purchase_id, lines, card_last4)})
            return RawResult(b'{"purchase":' + self.purchases.get(purchase_id).view + b"}")

    def resolve_purchases(self, request: Request, purchase_ids: list[str],
                          reason: dict | None) -> dict:
        """The verdict on purchases: committed ids are ``sold``; every other id is
        cancelled from now on (a started one's lines go back into its cart) and ``released``.
        ``reason``: the final error a resend of a purchase cancelled now is told (in memory
        only). Refused once its deadline has passed, like every request."""
        with self.writing(request):
            sold, released, fresh = self.purchases.verdict(purchase_ids)
            if fresh:
                keys = self.purchases.keys_of(fresh)
                self.change({"kind": "purchases_cancelled", "purchase_ids": fresh})
                for k in keys if reason else ():
                    self.outcomes.remember(k["scope"], k["key"], k["fingerprint"], k["at"],
                                           error=(reason["code"], reason["message"]))
        return {"sold": sold, "released": released}

    def get_purchase(self, request: Request, purchase_id: str) -> RawResult:
        with self._lock:
            buyer_id = self._session(request, Role.BUYER)
            return RawResult(b'{"purchase":' + self.purchases.bought_by(purchase_id,
                                                                        buyer_id).view + b"}")

    def get_purchases(self, request: Request, limit: int, after: str | None) -> RawResult:
        """One page of the buyer's purchases, oldest first, and ``items_purchased``."""
        with self._lock:
            return RawResult(self.purchases.page(self._session(request, Role.BUYER), limit,
                                                 after))

    # -- votes: recorded here, counted or refused by the product database's verdict -------

    def record_vote(self, request: Request, item_id: int, vote: str, key: str,
                    fingerprint: str) -> dict:
        """Record a buyer's vote on an item it bought under the vote key derived from its
        ``key``, once per key, and say where that vote is now (``state`` null: refused)."""
        with self._lock:
            buyer_id = self._session(request, Role.BUYER)
            scope = f"buyer:{buyer_id}"

            def write(keyed: dict) -> dict:
                self.purchases.bought_from(buyer_id, item_id)
                self.votes.check_new(buyer_id, item_id)
                vote_key = step_key(key, f"{scope}/vote")
                self.change({"kind": "vote_recorded", "buyer_id": buyer_id, "item_id": item_id,
                             "vote": vote, "key": vote_key, "keyed": keyed})
                return {"vote_key": vote_key, "item_id": item_id}
            recorded = self.keyed_write(request, scope, key, fingerprint, write)
            return {**recorded, "state": self.votes.state(buyer_id, recorded["item_id"],
                                                          recorded["vote_key"])}

    def recorded_votes(self, request: Request, older_than: int, limit: int) -> dict:
        """Keys of votes recorded ``older_than`` seconds ago or more, not yet settled."""
        with self._lock:
            return {"keys": self.votes.recorded_longer_than(older_than, limit)}

    def settle_votes(self, request: Request, counted: list[str], refused: list[str]) -> dict:
        """Apply the product database's verdicts: count the recorded votes of ``counted``,
        drop those of ``refused`` (their buyers may vote again)."""
        with self.writing(request):
            counted, refused = self.votes.settling(counted), self.votes.settling(refused)
            if counted or refused:
                self.change({"kind": "votes_settled", "counted": counted, "refused": refused})
        return {}


class CustomerDB(PurchaseAndVoteOps, Database):
    """The op table (``market.customer.api``), the lock, the sweeper and the journal wiring
    over ``CustomerData``: each op checks under the lock, then ``change(record)`` applies
    the record through ``CustomerData.appliers`` and journals it."""

    name = "customer database"
    kind = "customer_db"

    def __init__(self, session_timeout: float = DEFAULT_SESSION_TIMEOUT,
                 purchase_timeout: float = DEFAULT_PURCHASE_TIMEOUT) -> None:
        super().__init__()
        self.purchase_timeout = purchase_timeout
        # self._lock guards self.data and its pieces (named here for short).
        self.data = CustomerData(session_timeout, self.outcomes, self.feed)
        self.accounts, self.sessions, self.carts = (self.data.accounts, self.data.sessions,
                                                    self.data.carts)
        self.purchases, self.votes = self.data.purchases, self.data.votes
        self.appliers.update(self.data.appliers)
        self.leases = Leases(lease_length(session_timeout))  # thread-safe on its own
        self.serve({
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
            api.WATCH_SESSIONS: self.watch_sessions,
        })

    # -- sessions -------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self._sweep, name="sweeper", daemon=True).start()

    def _sweep(self) -> None:
        """Forever: end idle sessions, cancel purchases left unfinished (each sweep on
        disk before the next, so an expired session stays expired after a crash), and
        forget the outcomes of keys past their time."""
        interval = min(1.0, self.sessions.timeout / 4)
        while True:
            time.sleep(interval)
            now = time.monotonic()
            with self._lock:
                idle = self.sessions.idle(now)
                for token in idle:
                    self.change({"kind": "logout", "token": token})
                stale = self.purchases.stale(now, self.purchase_timeout)
                if stale:
                    self.change({"kind": "purchases_cancelled", "purchase_ids": stale})
                self.outcomes.forget_expired()
            self.leases.revoke(idle)
            self.leases.prune()
            self.wait_for_journal()

    def _session(self, request: Request, role: Role) -> int:
        """The user id of the live session of ``role`` behind the request, marked used.
        Hold the lock."""
        session = self.sessions.get(request.session, role)
        now = time.monotonic()
        if self.sessions.expired(session, now):
            self.change({"kind": "logout", "token": session.token})
            raise ApiError("invalid_session", "The session has expired; log in again.")
        self.sessions.touch(session, now)
        return session.user_id

    # -- accounts -------------------------------------------------------------

    def create_account(self, request: Request, role: str, username: str, salt: bytes,
                       hash: bytes, cost: int, key: str, fingerprint: str) -> dict:
        """Create the account once per ``key`` (scoped to the role and name)."""
        def write(keyed: dict) -> None:
            user_id = self.accounts.new_id(Role(role), username)
            self.change({"kind": "account", "role": role, "user_id": user_id, "name": username,
                         "salt": salt.hex(), "hash": hash.hex(), "cost": cost, "keyed": keyed})
        with self._lock:
            return self.keyed_write(request, f"{role}-name:{username}", key, fingerprint, write)

    def get_salt(self, request: Request, role: str, username: str) -> dict:
        return self.accounts.salt(Role(role), username)

    def login(self, request: Request, role: str, username: str, hash: bytes) -> dict:
        """Begin a session (``secrets.token_urlsafe``); an account with its fill of sessions
        ends its least recently used one first. The hash is compared by
        ``Accounts.verify`` with ``hmac.compare_digest``."""
        account = self.accounts.verify(Role(role), username, hash)
        token = secrets.token_urlsafe(32)
        with self.writing(request):
            least_recent = self.sessions.least_recent_over_cap(account.role, account.user_id)
            if least_recent is not None:
                self.change({"kind": "logout", "token": least_recent})
            self.change({"kind": "login", "token": token, "role": role,
                         "user_id": account.user_id})
        if least_recent is not None:
            self.leases.revoke([least_recent])
        return {"session": token, "user_id": account.user_id}

    def logout(self, request: Request, role: str) -> dict:
        with self.writing(request):
            self._session(request, Role(role))
            self.change({"kind": "logout", "token": request.session})
        self.leases.revoke([request.session])
        return {}

    def check_session(self, request: Request, role: str, holder: str | None) -> dict:
        """The session's user id, marked used; leased to ``holder`` if it is watching. The
        holder answers uses in the lease's first half itself, so the session counts as used
        until that half ends (it may expire that much late, never early)."""
        with self._lock:
            user_id = self._session(request, Role(role))
            lease = self.leases.grant(request.session, holder)
            if not lease:
                return {"user_id": user_id}
            self.sessions.touch(self.sessions.get(request.session, Role(role)),
                                time.monotonic() + lease / 2)
            return {"user_id": user_id, "lease_s": lease}

    def watch_sessions(self, request: Request, holder: str, epoch: str, seen: int,
                       wait_ms: int) -> dict:
        """A frontend's long poll for the sessions it must stop answering from its leases."""
        return self.leases.watch(holder, epoch, seen, wait_ms / 1000)

    def get_seller_rating(self, request: Request, role: str, seller_id: int | None) -> dict:
        """The rating of ``seller_id``, or (for a seller only) of the session's seller."""
        with self._lock:
            user_id = self._session(request, Role(role))
            if seller_id is None and role != Role.SELLER:
                raise ApiError("bad_request", "Missing field 'seller_id' in args.")
            return self.data.seller_rating(user_id if seller_id is None else seller_id)

    def followed_page(self, after: int) -> tuple[list[dict], int | None]:
        """The frontends' copies follow the sellers' ratings (``market.replication.feed``)."""
        return self.data.sellers_page(after)

    # -- carts ----------------------------------------------------------------

    def get_cart(self, request: Request) -> dict:
        with self._lock:
            self._session(request, Role.BUYER)
            return {"cart": self.carts.of(request.session).lines()}

    def add_to_cart(self, request: Request, item_id: int, quantity: int, available: int,
                    key: str, fingerprint: str) -> dict:
        return self._change_cart(request, key, fingerprint, lambda cart: added(
            cart, item_id, quantity, available, self.purchases.held_items(request.session)))

    def remove_from_cart(self, request: Request, item_id: int, quantity: int, key: str,
                         fingerprint: str) -> dict:
        return self._change_cart(request, key, fingerprint,
                                 lambda cart: removed(cart, item_id, quantity))

    def clear_cart(self, request: Request, key: str, fingerprint: str) -> dict:
        return self._change_cart(request, key, fingerprint, lambda cart: EMPTY)

    def _change_cart(self, request: Request, key: str, print_: str,
                     change: Callable[[Cart], Cart]) -> dict:
        return self._cart_write(request, key, print_, lambda: {
            "kind": "cart", "token": request.session,
            "cart": change(self.carts.of(request.session)).lines()})

    def save_cart(self, request: Request, key: str, fingerprint: str) -> dict:
        return self._cart_write(request, key, fingerprint,
                                lambda: {"kind": "save", "token": request.session})

    def _cart_write(self, request: Request, key: str, print_: str,
                    record: Callable[[], dict]) -> dict:
        """Make the change ``record()`` says (it may refuse), once per ``key`` of the buyer;
        the reply is the session's cart after it (for a resend: as it is now)."""
        def write(keyed: dict) -> None:
            self.change({**record(), "keyed": keyed})
        with self._lock:
            buyer_id = self._session(request, Role.BUYER)
            self.keyed_write(request, f"buyer:{buyer_id}", key, print_, write)
            return {"cart": self.carts.of(request.session).lines()}

    # -- snapshots and figures ------------------------------------------------------

    def dump(self) -> Any:
        return {name: part.dump() for name, part in self.data.parts().items()}

    def restore(self, state: Any) -> None:
        for name, part in self.data.parts().items():
            part.restore(state[name])

    def data_stats(self) -> dict:
        """How much the database holds, for the ``Stats`` op."""
        with self._lock:
            return self.data.stats()


def main(argv: list[str] | None = None) -> None:
    parser = database_parser("Customer database: accounts, sessions, carts, purchases, votes.",
                             "CUSTOMER_DB", DEFAULT_CUSTOMER_DB_PORT)
    env_default(parser, "--session-timeout", "SESSION_TIMEOUT", DEFAULT_SESSION_TIMEOUT,
                "seconds of inactivity after which a session is removed", type=float)
    env_default(parser, "--purchase-timeout", "PURCHASE_TIMEOUT", DEFAULT_PURCHASE_TIMEOUT,
                "seconds after which a purchase that was started but neither committed nor "
                "cancelled is cancelled (its lines go back into the cart)", type=float)
    # For tests: lease sessions for this long (default: market.replication.leases.lease_length).
    parser.add_argument("--test-session-lease", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    database = CustomerDB(args.session_timeout, args.purchase_timeout)
    if args.test_session_lease is not None:
        database.leases = Leases(args.test_session_lease)
    if args.data_dir:
        database.leases.restarted()
    database_main(database, args)


if __name__ == "__main__":
    main()
