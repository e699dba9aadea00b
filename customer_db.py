"""Customer database service: buyers, sellers, sessions, carts, purchases, seller feedback.

Internal ops, spoken only by the frontends. Money is in integer cents here;
the frontends turn it into dollars for clients. Passwords arrive hashed (the
frontends hash them); this database stores and compares hashes only.

A purchase is a small state machine owned here: ``StartPurchase`` moves the
session cart's lines into a pending purchase; ``CommitPurchase`` records
exactly those lines; a cancel (``ResolvePurchases``, or the sweeper after
``--purchase-timeout``) puts them back into the cart. An id is committed
once or cancelled, never both.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from market.database import Database, Recent, database_main, database_parser, first_id
from market.fields import (CART_MAX, HASH_COST, ITEM_ID, ITEM_NAME, PASSWORD_HASH, PRICE_CENTS,
                           PURCHASE_ID, QUANTITY, ROLE, SALT, SELLER_ID, UNDO_KEY, USERNAME, VOTE,
                           dollars)
from market.paging import CURSOR, PAGE_LIMIT, make_cursor, page, read_cursor
from market.server import Op, Request, env_default
from protocol import ApiError, Int, ListOf, Omittable, RawResult, Record, Str, encode_value

DEFAULT_SESSION_TIMEOUT = 300.0
DEFAULT_PURCHASE_TIMEOUT = 60.0
CANCELLED_TTL = 120.0  # seconds a cancelled purchase id is remembered (well past any deadline)


def utc_now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Account:
    user_id: int
    name: str
    salt: bytes
    password_hash: bytes
    cost: int
    saved_cart: dict[int, int] = field(default_factory=dict)


@dataclass
class Seller(Account):
    thumbs_up: int = 0
    thumbs_down: int = 0
    items_sold: int = 0


@dataclass
class Buyer(Account):
    items_purchased: int = 0
    purchases: list[dict] = field(default_factory=list)  # in cents, for the journal
    purchases_json: list[bytes] = field(default_factory=list)  # as clients see them
    purchased_items: dict[int, int] = field(default_factory=dict)  # item_id -> seller_id
    feedback_given: dict[int, list[str]] = field(default_factory=dict)  # item_id -> [key, vote]


@dataclass
class Session:
    role: str
    user_id: int
    last_active: float
    cart: dict[int, int] = field(default_factory=dict)  # item_id -> units, in insertion order
    # Items in this session's pending purchases (item_id -> how many hold it): they
    # count toward the cart's cap, since a cancel puts them back.
    held: Counter[int] = field(default_factory=Counter)

    def distinct_items(self) -> int:
        """Distinct items of the cart and its pending purchases together."""
        return len(self.cart.keys() | self.held.keys()) if self.held else len(self.cart)


@dataclass
class PendingPurchase:
    """Cart lines taken out of a session's cart by ``StartPurchase``, awaiting commit or cancel."""

    token: str
    buyer_id: int
    lines: list[list[int]]  # [[item_id, units], ...]
    since: float = field(default_factory=time.monotonic)


PURCHASE_LINE = {"item_id": ITEM_ID, "name": ITEM_NAME, "quantity": QUANTITY,
                 "price": PRICE_CENTS, "seller_id": SELLER_ID}


class CustomerDB(Database):
    """Every change goes through ``change(record)``, which applies it and journals it,
    so replaying the journal after a restart runs exactly the code that ran live."""

    name = "customer database"
    kind = "customer_db"

    def __init__(self, session_timeout: float = DEFAULT_SESSION_TIMEOUT,
                 purchase_timeout: float = DEFAULT_PURCHASE_TIMEOUT, first_id: int = 1) -> None:
        super().__init__()
        self.session_timeout = session_timeout
        self.purchase_timeout = purchase_timeout
        self._pepper = secrets.token_bytes(32)  # made-up salts of unknown names
        # self._lock guards every table below. Invariants: usernames are unique
        # per role; every session names an existing account; a buyer's
        # counters, purchases and feedback change together with the sellers'
        # counters; a cart line is in its session's cart or in one pending
        # purchase, never both; a purchase id is committed once or cancelled,
        # never both.
        self._accounts: dict[str, dict[int, Account]] = {"buyer": {}, "seller": {}}
        self._by_name: dict[str, dict[str, Account]] = {"buyer": {}, "seller": {}}
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, PendingPurchase] = {}  # purchase_id -> lines being bought
        self._purchases: dict[str, bytes] = {}  # purchase_id -> record's JSON, every buyer's
        self._cancelled = Recent(CANCELLED_TTL)  # purchase ids that may never commit
        self._next_id = {"buyer": first_id, "seller": first_id}
        account = {"role": ROLE, "username": USERNAME}
        self.ops.update({
            "CreateAccount": Op(self.create_account, {**account, "salt": SALT,
                                                      "hash": PASSWORD_HASH, "cost": HASH_COST},
                                needs_session=False),
            "GetSalt": Op(self.get_salt, account, needs_session=False),
            "Login": Op(self.login, {**account, "hash": PASSWORD_HASH}, needs_session=False),
            "Logout": Op(self.logout, {"role": ROLE}),
            "CheckSession": Op(self.check_session, {"role": ROLE}),
            "GetSellerRating": Op(self.get_seller_rating,
                                  {"role": ROLE, "seller_id": Omittable(SELLER_ID)}),
            "GetCart": Op(self.get_cart),
            "AddToCart": Op(self.add_to_cart, {"item_id": ITEM_ID, "quantity": QUANTITY,
                                               "available": Int(0)}),
            "RemoveFromCart": Op(self.remove_from_cart, {"item_id": ITEM_ID,
                                                         "quantity": QUANTITY}),
            "SaveCart": Op(self.save_cart),
            "ClearCart": Op(self.clear_cart),
            "StartPurchase": Op(self.start_purchase, {
                "purchase_id": PURCHASE_ID, "card_problem": Str(0, 200)}),
            "CommitPurchase": Op(self.commit_purchase, {
                "purchase_id": PURCHASE_ID, "lines": ListOf(Record(PURCHASE_LINE)),
                "card_last4": Str(4, 4)}, needs_session=False),
            "ResolvePurchases": Op(self.resolve_purchases,
                                   {"purchase_ids": ListOf(PURCHASE_ID)}, needs_session=False),
            "GetPurchases": Op(self.get_purchases, {"limit": PAGE_LIMIT, "after": CURSOR}),
            "RecordFeedback": Op(self.record_feedback, {"item_id": ITEM_ID, "vote": VOTE,
                                                        "key": UNDO_KEY}),
            "RevokeFeedback": Op(self.revoke_feedback, {"buyer_id": Int(1), "item_id": ITEM_ID,
                                                        "key": UNDO_KEY}, needs_session=False),
        })

    # -- sessions -------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self._sweep, name="sweeper", daemon=True).start()

    def _sweep(self) -> None:
        """Forever: remove idle sessions and cancel purchases left unfinished.

        Each sweep's records are on disk before the next, so an expired session
        stays expired after a crash.
        """
        interval = min(1.0, self.session_timeout / 4)
        while True:
            time.sleep(interval)
            now = time.monotonic()
            with self._lock:
                for token in [t for t, s in self._sessions.items()
                              if now - s.last_active > self.session_timeout]:
                    self.change({"kind": "logout", "token": token})
                stale = [p for p, pending in self._pending.items()
                         if now - pending.since > self.purchase_timeout]
                if stale:
                    self.change({"kind": "cancel", "purchase_ids": stale})
            self.wait_for_journal()

    def _session(self, request: Request, role: str) -> Session:
        """The live session of ``role`` behind the request's token, refreshed. Hold the lock."""
        session = self._sessions.get(request.session)
        now = time.monotonic()
        if session is None or session.role != role:
            raise ApiError("invalid_session", "The session is unknown, expired or logged out.")
        if now - session.last_active > self.session_timeout:
            self.change({"kind": "logout", "token": request.session})
            raise ApiError("invalid_session", "The session has expired; log in again.")
        session.last_active = now
        return session

    def _buyer(self, request: Request) -> tuple[Session, Buyer]:
        session = self._session(request, "buyer")
        return session, self._accounts["buyer"][session.user_id]

    # -- accounts -------------------------------------------------------------

    def create_account(self, request: Request, role: str, username: str, salt: bytes,
                       hash: bytes, cost: int) -> dict:
        with self.writing(request):
            if username in self._by_name[role]:
                raise ApiError("conflict", f"The {role} name '{username}' is taken.")
            user_id = self._next_id[role]
            self.change({"kind": "account", "role": role, "user_id": user_id, "name": username,
                         "salt": salt.hex(), "hash": hash.hex(), "cost": cost})
        return {"user_id": user_id}

    def get_salt(self, request: Request, role: str, username: str) -> dict:
        """The salt and cost to hash a login with; an unknown name gets a made-up salt
        (the same each time) and no cost, so the frontend pays one hash either way."""
        account = self._by_name[role].get(username)
        if account is not None:
            return {"salt": account.salt.hex(), "cost": account.cost}
        made_up = hmac.new(self._pepper, f"{role}:{username}".encode(), hashlib.sha256)
        return {"salt": made_up.digest()[:16].hex(), "cost": None}

    def login(self, request: Request, role: str, username: str, hash: bytes) -> dict:
        account = self._by_name[role].get(username)
        if account is None or not hmac.compare_digest(hash, account.password_hash):
            raise ApiError("auth_failed", "Wrong username or password.")
        token = secrets.token_urlsafe(32)
        with self.writing(request):
            self.change({"kind": "login", "token": token, "role": role,
                         "user_id": account.user_id})
        return {"session": token, "user_id": account.user_id}

    def logout(self, request: Request, role: str) -> dict:
        with self.writing(request):
            self._session(request, role)
            self.change({"kind": "logout", "token": request.session})
        return {}

    def check_session(self, request: Request, role: str) -> dict:
        with self._lock:
            return {"user_id": self._session(request, role).user_id}

    def get_seller_rating(self, request: Request, role: str, seller_id: int | None) -> dict:
        with self._lock:
            session = self._session(request, role)
            if seller_id is None:
                if role != "seller":
                    raise ApiError("bad_request", "Missing field 'seller_id' in args.")
                seller_id = session.user_id
            seller = self._accounts["seller"].get(seller_id)
            if seller is None:
                raise ApiError("not_found", f"There is no seller {seller_id}.")
            return {"seller_id": seller_id, "thumbs_up": seller.thumbs_up,
                    "thumbs_down": seller.thumbs_down, "items_sold": seller.items_sold,
                    "name": seller.name}

    # -- carts ----------------------------------------------------------------
    # A cart travels as {"cart": [[item_id, units], ...]}; the frontend adds item details.

    def get_cart(self, request: Request) -> dict:
        with self._lock:
            return {"cart": list(self._buyer(request)[0].cart.items())}

    def add_to_cart(self, request: Request, item_id: int, quantity: int, available: int) -> dict:
        with self.writing(request):
            session = self._buyer(request)[0]
            cart = dict(session.cart)
            if (item_id not in cart and item_id not in session.held
                    and session.distinct_items() >= CART_MAX):
                raise ApiError("conflict", f"The cart already holds {CART_MAX} different items, "
                                           "the most it can; buy or remove some first.")
            wanted = cart.get(item_id, 0) + quantity
            if wanted > available:
                raise ApiError("conflict", f"Only {available} units of item {item_id} are "
                                           f"available and the cart would hold {wanted}.")
            cart[item_id] = wanted
            return self._set_cart(request, cart)

    def remove_from_cart(self, request: Request, item_id: int, quantity: int) -> dict:
        with self.writing(request):
            cart = dict(self._buyer(request)[0].cart)
            if cart.get(item_id, 0) > quantity:
                cart[item_id] -= quantity
            else:
                cart.pop(item_id, None)
            return self._set_cart(request, cart)

    def clear_cart(self, request: Request) -> dict:
        with self.writing(request):
            self._buyer(request)
            return self._set_cart(request, {})

    def _set_cart(self, request: Request, cart: dict[int, int]) -> dict:
        lines = list(cart.items())
        self.change({"kind": "cart", "token": request.session, "cart": lines})
        return {"cart": lines}

    def save_cart(self, request: Request) -> dict:
        with self.writing(request):
            session = self._buyer(request)[0]
            self.change({"kind": "save", "token": request.session})
            return {"cart": list(session.cart.items())}

    # -- purchases ------------------------------------------------------------

    def start_purchase(self, request: Request, purchase_id: str, card_problem: str) -> dict:
        """Move the session cart's lines into a pending purchase and return them.

        ``card_problem`` is the frontend's verdict on the card ('' when fine):
        checked after the session and the cart, so the errors come in the
        contract's order. A second start on the same cart finds nothing to buy.
        """
        with self.writing(request):
            session, buyer = self._buyer(request)
            pending = self._pending.get(purchase_id)
            if pending is not None and pending.buyer_id == buyer.user_id:
                return {"buyer_id": buyer.user_id, "cart": pending.lines}
            if purchase_id in self._pending or purchase_id in self._purchases \
                    or purchase_id in self._cancelled:
                raise ApiError("conflict", "This purchase id was used already.")
            if not session.cart:
                raise ApiError("conflict", "The cart is empty: there is nothing to buy.")
            if card_problem:
                raise ApiError("conflict", f"The card was rejected: {card_problem}.")
            lines = [list(line) for line in session.cart.items()]
            self.change({"kind": "start", "token": request.session, "purchase_id": purchase_id,
                         "buyer_id": buyer.user_id, "lines": lines})
            return {"buyer_id": buyer.user_id, "cart": lines}

    def commit_purchase(self, request: Request, purchase_id: str, lines: list[dict],
                        card_last4: str) -> RawResult:
        """Record a pending purchase whose units the product database has taken.

        Committing the same id twice returns the first record unchanged (even
        past the deadline); an id that was cancelled (or never started) is refused.
        """
        with self._lock:
            if purchase_id not in self._purchases:
                request.check_deadline()
                pending = self._pending.get(purchase_id)
                if pending is None:
                    raise ApiError("conflict", "The purchase took too long and was cancelled; "
                                               "nothing was bought.")
                if sorted([line["item_id"], line["quantity"]] for line in lines) \
                        != sorted(pending.lines):
                    raise ApiError("bad_request", "The lines do not match the purchase's cart.")
                record_lines = [{**line, "line_total": line["price"] * line["quantity"]}
                                for line in lines]
                self.change({"kind": "purchase", "purchase": {
                    "purchase_id": purchase_id, "time": utc_now_iso(), "lines": record_lines,
                    "total": sum(line["line_total"] for line in record_lines),
                    "card_last4": card_last4}})
            return RawResult(b'{"purchase":' + self._purchases[purchase_id] + b"}")

    def resolve_purchases(self, request: Request, purchase_ids: list[str]) -> dict:
        """The verdict on purchases: committed ids are ``sold``; every other id is
        cancelled from now on (a pending one's lines go back into its cart) and ``released``."""
        with self.writing(request):
            sold = [p for p in purchase_ids if p in self._purchases]
            released = [p for p in purchase_ids if p not in self._purchases]
            fresh = [p for p in released if p not in self._cancelled]
            if fresh:
                self.change({"kind": "cancel", "purchase_ids": fresh})
        return {"sold": sold, "released": released}

    def get_purchases(self, request: Request, limit: int, after: str | None) -> RawResult:
        """One page of the buyer's purchases, oldest first, and ``items_purchased``."""
        with self._lock:
            buyer = self._buyer(request)[1]
            start = read_cursor(after, "purchases", buyer.user_id)
            shown = page(buyer.purchases_json, start, limit, len)
            more = start + len(shown) < len(buyer.purchases_json)
            count = buyer.items_purchased
        cursor = make_cursor("purchases", buyer.user_id, start + len(shown)) if more else None
        return RawResult(b'{"purchases":[' + b",".join(shown) + b'],"next":'
                         + encode_value(cursor) + b',"items_purchased":'
                         + str(count).encode() + b"}")

    # -- feedback -------------------------------------------------------------

    def record_feedback(self, request: Request, item_id: int, vote: str, key: str) -> dict:
        """Count a buyer's vote for the item's seller, once, only after a purchase.

        ``key`` names this attempt, so that only its own ``RevokeFeedback`` undoes it.
        """
        with self.writing(request):
            buyer = self._buyer(request)[1]
            seller_id = buyer.purchased_items.get(item_id)
            if seller_id is None:
                raise ApiError("conflict", f"You can rate item {item_id} only after buying it.")
            if item_id in buyer.feedback_given:
                raise ApiError("conflict", f"You have already rated item {item_id}.")
            self.change({"kind": "feedback", "buyer_id": buyer.user_id, "item_id": item_id,
                         "vote": vote, "key": key})
            return {"seller_id": seller_id, "buyer_id": buyer.user_id}

    def revoke_feedback(self, request: Request, buyer_id: int, item_id: int, key: str) -> dict:
        """Undo the ``record_feedback`` of attempt ``key``, if it is the one counted.

        A compensation: applied however late (no deadline, no session), and idempotent.
        """
        with self._lock:
            buyer = self._accounts["buyer"].get(buyer_id)
            if buyer is None:
                raise ApiError("not_found", f"There is no buyer {buyer_id}.")
            if buyer.feedback_given.get(item_id, [None])[0] == key:
                self.change({"kind": "unfeedback", "buyer_id": buyer.user_id,
                             "item_id": item_id})
            return {}

    # -- changes: the only code that modifies state -----------------------------

    def change(self, record: dict) -> None:
        """Apply one change and journal it. Hold the lock."""
        self.apply(record)
        self.record(record)

    def apply(self, record: dict) -> None:
        getattr(self, "_apply_" + record["kind"])(record)

    def _apply_account(self, r: dict) -> None:
        role = r["role"]
        account = (Seller if role == "seller" else Buyer)(
            r["user_id"], r["name"], bytes.fromhex(r["salt"]), bytes.fromhex(r["hash"]),
            r["cost"])
        self._accounts[role][account.user_id] = account
        self._by_name[role][account.name] = account
        self._next_id[role] = max(self._next_id[role], account.user_id + 1)

    def _apply_login(self, r: dict) -> None:
        account = self._accounts[r["role"]][r["user_id"]]
        self._sessions[r["token"]] = Session(r["role"], r["user_id"], time.monotonic(),
                                             dict(account.saved_cart))

    def _apply_logout(self, r: dict) -> None:
        self._sessions.pop(r["token"], None)

    def _apply_cart(self, r: dict) -> None:
        self._sessions[r["token"]].cart = {item_id: units for item_id, units in r["cart"]}

    def _apply_save(self, r: dict) -> None:
        session = self._sessions[r["token"]]
        self._accounts["buyer"][session.user_id].saved_cart = dict(session.cart)

    def _apply_start(self, r: dict) -> None:
        self._pending[r["purchase_id"]] = PendingPurchase(r["token"], r["buyer_id"], r["lines"])
        session = self._sessions[r["token"]]
        session.cart = {}
        session.held.update(item_id for item_id, _ in r["lines"])

    def _release(self, pending: PendingPurchase) -> Session | None:
        """The session of a pending purchase that is ending, its lines no longer held."""
        session = self._sessions.get(pending.token)
        if session is not None:
            session.held.subtract(item_id for item_id, _ in pending.lines)
            session.held = +session.held  # drop the zeros
        return session

    def _apply_purchase(self, r: dict) -> None:
        purchase = r["purchase"]
        pending = self._pending.pop(purchase["purchase_id"])
        self._release(pending)
        buyer = self._accounts["buyer"][pending.buyer_id]
        sellers = self._accounts["seller"]
        for line in purchase["lines"]:
            buyer.purchased_items[line["item_id"]] = line["seller_id"]
            buyer.items_purchased += line["quantity"]
            if line["seller_id"] in sellers:
                sellers[line["seller_id"]].items_sold += line["quantity"]
        self._add_purchase(buyer, purchase)
        for item_id, units in pending.lines:  # the saved cart loses what was bought
            left = buyer.saved_cart.get(item_id, 0) - units
            if left > 0:
                buyer.saved_cart[item_id] = left
            else:
                buyer.saved_cart.pop(item_id, None)

    def _add_purchase(self, buyer: Buyer, purchase: dict) -> None:
        view = encode_value(purchase_view(purchase))
        buyer.purchases.append(purchase)
        buyer.purchases_json.append(view)
        self._purchases[purchase["purchase_id"]] = view

    def _apply_cancel(self, r: dict) -> None:
        for purchase_id in r["purchase_ids"]:
            self._cancelled.put(purchase_id)
            pending = self._pending.pop(purchase_id, None)
            session = pending and self._release(pending)
            if session is not None:  # the lines go back, before any added meanwhile
                cart = {item_id: units for item_id, units in pending.lines}
                for item_id, units in session.cart.items():
                    cart[item_id] = cart.get(item_id, 0) + units
                session.cart = cart

    def _apply_feedback(self, r: dict) -> None:
        buyer = self._accounts["buyer"][r["buyer_id"]]
        buyer.feedback_given[r["item_id"]] = [r["key"], r["vote"]]
        self._count_vote(buyer, r["item_id"], r["vote"], 1)

    def _apply_unfeedback(self, r: dict) -> None:
        buyer = self._accounts["buyer"][r["buyer_id"]]
        _, vote = buyer.feedback_given.pop(r["item_id"])
        self._count_vote(buyer, r["item_id"], vote, -1)

    def _count_vote(self, buyer: Buyer, item_id: int, vote: str, step: int) -> None:
        seller = self._accounts["seller"].get(buyer.purchased_items[item_id])
        if seller is not None:
            if vote == "up":
                seller.thumbs_up += step
            else:
                seller.thumbs_down += step

    # -- snapshots --------------------------------------------------------------

    def dump(self) -> Any:
        def account(a: Account) -> dict:
            raw = {"user_id": a.user_id, "name": a.name, "salt": a.salt.hex(),
                   "hash": a.password_hash.hex(), "cost": a.cost,
                   "saved_cart": list(a.saved_cart.items())}
            if isinstance(a, Seller):
                raw.update(thumbs_up=a.thumbs_up, thumbs_down=a.thumbs_down,
                           items_sold=a.items_sold)
            else:
                raw.update(items_purchased=a.items_purchased, purchases=a.purchases,
                           purchased_items=list(a.purchased_items.items()),
                           feedback_given=list(a.feedback_given.items()))
            return raw
        return {"accounts": {role: [account(a) for a in table.values()]
                             for role, table in self._accounts.items()},
                "sessions": [[token, s.role, s.user_id, list(s.cart.items())]
                             for token, s in self._sessions.items()],
                "pending": [[purchase_id, p.token, p.buyer_id, p.lines]
                            for purchase_id, p in self._pending.items()],
                "cancelled": [purchase_id for purchase_id, _ in self._cancelled.items()]}

    def restore(self, state: Any) -> None:
        for role, accounts in state["accounts"].items():
            for raw in accounts:
                self._apply_account({"role": role, **raw})
                account = self._accounts[role][raw["user_id"]]
                account.saved_cart = dict(raw["saved_cart"])
                if isinstance(account, Seller):
                    account.thumbs_up, account.thumbs_down = raw["thumbs_up"], raw["thumbs_down"]
                    account.items_sold = raw["items_sold"]
                else:
                    account.items_purchased = raw["items_purchased"]
                    for purchase in raw["purchases"]:
                        self._add_purchase(account, purchase)
                    account.purchased_items = dict(raw["purchased_items"])
                    account.feedback_given = dict(raw["feedback_given"])
        for purchase_id in state["cancelled"]:
            self._cancelled.put(purchase_id)
        now = time.monotonic()
        for token, role, user_id, cart in state["sessions"]:
            self._sessions[token] = Session(role, user_id, now, dict(cart))
        for purchase_id, token, buyer_id, lines in state["pending"]:
            self._pending[purchase_id] = PendingPurchase(token, buyer_id, lines)
            if token in self._sessions:
                self._sessions[token].held.update(item_id for item_id, _ in lines)


def purchase_view(record: dict) -> dict:
    """A stored purchase (cents) as clients see it (dollars)."""
    return {**record, "total": dollars(record["total"]),
            "lines": [{**line, "price": dollars(line["price"]),
                       "line_total": dollars(line["line_total"])} for line in record["lines"]]}


def main(argv: list[str] | None = None) -> None:
    parser = database_parser("Customer database: accounts, sessions, carts, purchases.",
                             "CUSTOMER_DB", 9002)
    env_default(parser, "--session-timeout", "SESSION_TIMEOUT", DEFAULT_SESSION_TIMEOUT,
                "seconds of inactivity after which a session is removed", type=float)
    env_default(parser, "--purchase-timeout", "PURCHASE_TIMEOUT", DEFAULT_PURCHASE_TIMEOUT,
                "seconds after which a purchase that was started but neither committed nor "
                "cancelled is cancelled (its lines go back into the cart)", type=float)
    args = parser.parse_args(argv)
    database_main(CustomerDB(args.session_timeout, args.purchase_timeout, first_id(args)), args)


if __name__ == "__main__":
    main()
