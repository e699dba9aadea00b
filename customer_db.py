"""Customer database service: buyers, sellers, sessions, carts, purchases, seller feedback.

Internal ops, spoken only by the frontends. Money is in integer cents here;
the frontends turn it into dollars for clients.
"""
from __future__ import annotations

import ctypes
import datetime
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from protocol import (ApiError, Database, Int, ITEM_ID, ListOf, Op, Optional, PASSWORD,
                      PURCHASE_ID, QUANTITY, RawResult, Record, ROLE, Request, Str, USERNAME,
                      VOTE, database_main, database_parser, dollars, encode_value, env_default)

DEFAULT_SESSION_TIMEOUT = 300.0
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}  # ~30 ms per hash, 16 MiB


def utc_now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, maxmem=64 << 20, **SCRYPT)


@dataclass
class Account:
    user_id: int
    name: str
    salt: bytes
    password_hash: bytes
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
    feedback_given: set[int] = field(default_factory=set)


@dataclass
class Session:
    role: str
    user_id: int
    last_active: float
    cart: dict[int, int] = field(default_factory=dict)  # item_id -> units, in insertion order


PURCHASE_LINE = {"item_id": ITEM_ID, "name": Str(1, 32), "quantity": QUANTITY,
                 "price": Int(1, 100_000_000), "seller_id": Int(1)}


class CustomerDB(Database):
    """Every change goes through ``change(record)``, which applies it and journals it,
    so replaying the journal after a restart runs exactly the code that ran live."""

    name = "customer database"

    def __init__(self, session_timeout: float = DEFAULT_SESSION_TIMEOUT) -> None:
        super().__init__()
        self.session_timeout = session_timeout
        # self._lock guards every table below. Invariants: usernames are unique
        # per role; every session names an existing account; a buyer's
        # counters, purchases and feedback change together with the sellers'
        # counters; a purchase id is either committed once or cancelled, never both.
        self._accounts: dict[str, dict[int, Account]] = {"buyer": {}, "seller": {}}
        self._by_name: dict[str, dict[str, Account]] = {"buyer": {}, "seller": {}}
        self._sessions: dict[str, Session] = {}
        self._purchases: dict[str, bytes] = {}  # purchase_id -> record's JSON, every buyer's
        self._cancelled: set[str] = set()  # purchase ids that may never commit
        self._next_id = {"buyer": 1, "seller": 1}
        self.ops = {
            "CreateAccount": Op(self.create_account, {"role": ROLE, "username": USERNAME,
                                                      "password": PASSWORD}, needs_session=False),
            "Login": Op(self.login, {"role": ROLE, "username": USERNAME, "password": PASSWORD},
                        needs_session=False),
            "Logout": Op(self.logout, {"role": ROLE}),
            "CheckSession": Op(self.check_session, {"role": ROLE}),
            "GetSellerRating": Op(self.get_seller_rating,
                                  {"role": ROLE, "seller_id": Optional(Int(1))}),
            "GetCart": Op(self.get_cart),
            "AddToCart": Op(self.add_to_cart, {"item_id": ITEM_ID, "quantity": QUANTITY,
                                               "available": Int(0)}),
            "RemoveFromCart": Op(self.remove_from_cart, {"item_id": ITEM_ID,
                                                         "quantity": QUANTITY}),
            "SaveCart": Op(self.save_cart),
            "ClearCart": Op(self.clear_cart),
            "StartPurchase": Op(self.start_purchase),
            "CommitPurchase": Op(self.commit_purchase, {
                "purchase_id": PURCHASE_ID, "lines": ListOf(Record(PURCHASE_LINE)),
                "card_last4": Str(4, 4)}),
            "ResolvePurchases": Op(self.resolve_purchases,
                                   {"purchase_ids": ListOf(PURCHASE_ID)}, needs_session=False),
            "GetPurchases": Op(self.get_purchases),
            "RecordFeedback": Op(self.record_feedback, {"item_id": ITEM_ID, "vote": VOTE}),
            "RevokeFeedback": Op(self.revoke_feedback, {"item_id": ITEM_ID, "vote": VOTE}),
        }

    # -- sessions -------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self._sweep_sessions, name="session-sweeper", daemon=True).start()

    def _sweep_sessions(self) -> None:
        """Remove sessions idle longer than the timeout, forever."""
        interval = min(1.0, self.session_timeout / 4)
        while True:
            time.sleep(interval)
            deadline = time.monotonic() - self.session_timeout
            with self._lock:
                expired = [t for t, s in self._sessions.items() if s.last_active < deadline]
                for token in expired:
                    self.change({"t": "logout", "token": token})

    def _session(self, request: Request, role: str) -> Session:
        """The live session of ``role`` behind the request's token, refreshed. Hold the lock."""
        session = self._sessions.get(request.session)
        now = time.monotonic()
        if session is None or session.role != role:
            raise ApiError("invalid_session", "The session is unknown, expired or logged out.")
        if now - session.last_active > self.session_timeout:
            self.change({"t": "logout", "token": request.session})
            raise ApiError("invalid_session", "The session has expired; log in again.")
        session.last_active = now
        return session

    def _buyer(self, request: Request) -> tuple[Session, Buyer]:
        session = self._session(request, "buyer")
        return session, self._accounts["buyer"][session.user_id]

    # -- accounts -------------------------------------------------------------

    def create_account(self, request: Request, role: str, username: str, password: str) -> dict:
        taken = ApiError("conflict", f"The {role} name '{username}' is taken.")
        if username in self._by_name[role]:
            raise taken
        salt = secrets.token_bytes(16)
        digest = hash_password(password, salt)  # slow: outside the lock
        with self._lock:
            if username in self._by_name[role]:
                raise taken
            user_id = self._next_id[role]
            self.change({"t": "account", "role": role, "user_id": user_id, "name": username,
                         "salt": salt.hex(), "hash": digest.hex()})
        return {"user_id": user_id}

    def login(self, request: Request, role: str, username: str, password: str) -> dict:
        account = self._by_name[role].get(username)
        salt = account.salt if account else b"no such account!"
        digest = hash_password(password, salt)  # hashed even for unknown names: same timing
        if account is None or not hmac.compare_digest(digest, account.password_hash):
            raise ApiError("auth_failed", "Wrong username or password.")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.change({"t": "login", "token": token, "role": role,
                         "user_id": account.user_id})
        return {"session": token, "user_id": account.user_id}

    def logout(self, request: Request, role: str) -> dict:
        with self._lock:
            self._session(request, role)
            self.change({"t": "logout", "token": request.session})
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
        with self._lock:
            cart = dict(self._buyer(request)[0].cart)
            wanted = cart.get(item_id, 0) + quantity
            if wanted > available:
                raise ApiError("conflict", f"Only {available} units of item {item_id} are "
                                           f"available and the cart would hold {wanted}.")
            cart[item_id] = wanted
            return self._set_cart(request, cart)

    def remove_from_cart(self, request: Request, item_id: int, quantity: int) -> dict:
        with self._lock:
            cart = dict(self._buyer(request)[0].cart)
            if cart.get(item_id, 0) > quantity:
                cart[item_id] -= quantity
            else:
                cart.pop(item_id, None)
            return self._set_cart(request, cart)

    def clear_cart(self, request: Request) -> dict:
        with self._lock:
            self._buyer(request)
            return self._set_cart(request, {})

    def _set_cart(self, request: Request, cart: dict[int, int]) -> dict:
        lines = list(cart.items())
        self.change({"t": "cart", "token": request.session, "cart": lines})
        return {"cart": lines}

    def save_cart(self, request: Request) -> dict:
        with self._lock:
            session = self._buyer(request)[0]
            self.change({"t": "save", "token": request.session})
            return {"cart": list(session.cart.items())}

    # -- purchases ------------------------------------------------------------

    def start_purchase(self, request: Request) -> dict:
        """Check the session and return what the purchase will try to buy."""
        with self._lock:
            session = self._buyer(request)[0]
            if not session.cart:
                raise ApiError("conflict", "The cart is empty: there is nothing to buy.")
            return {"buyer_id": session.user_id, "cart": list(session.cart.items())}

    def commit_purchase(self, request: Request, purchase_id: str, lines: list[dict],
                        card_last4: str) -> RawResult:
        """Record a purchase whose units the product database has already taken.

        Applying the same ``purchase_id`` twice returns the first record unchanged;
        an id that ``resolve_purchases`` cancelled is refused.
        """
        with self._lock:
            self._buyer(request)
            if purchase_id in self._cancelled:
                raise ApiError("conflict", "The purchase took too long and was cancelled; "
                                           "nothing was bought.")
            if purchase_id not in self._purchases:
                record_lines = [{**line, "line_total": line["price"] * line["quantity"]}
                                for line in lines]
                self.change({"t": "purchase", "token": request.session, "purchase": {
                    "purchase_id": purchase_id, "time": utc_now_iso(), "lines": record_lines,
                    "total": sum(line["line_total"] for line in record_lines),
                    "card_last4": card_last4}})
            return RawResult(b'{"purchase":' + self._purchases[purchase_id] + b"}")

    def resolve_purchases(self, request: Request, purchase_ids: list[str]) -> dict:
        """The verdict on purchases whose units are taken: committed ids are
        ``sold``; every other id is cancelled from now on and ``released``."""
        with self._lock:
            sold = [p for p in purchase_ids if p in self._purchases]
            released = [p for p in purchase_ids if p not in self._purchases]
            fresh = [p for p in released if p not in self._cancelled]
            if fresh:
                self.change({"t": "cancel", "purchase_ids": fresh})
        return {"sold": sold, "released": released}

    def get_purchases(self, request: Request) -> RawResult:
        """The buyer's purchases, oldest first, and ``items_purchased``."""
        with self._lock:
            buyer = self._buyer(request)[1]
            parts = list(buyer.purchases_json)
            count = buyer.items_purchased
        return RawResult(b'{"purchases":[' + b",".join(parts) + b'],"items_purchased":'
                         + str(count).encode() + b"}")

    # -- feedback -------------------------------------------------------------

    def record_feedback(self, request: Request, item_id: int, vote: str) -> dict:
        """Count a buyer's vote for the item's seller, once, only after a purchase."""
        with self._lock:
            buyer = self._buyer(request)[1]
            seller_id = buyer.purchased_items.get(item_id)
            if seller_id is None:
                raise ApiError("conflict", f"You can rate item {item_id} only after buying it.")
            if item_id in buyer.feedback_given:
                raise ApiError("conflict", f"You have already rated item {item_id}.")
            self.change({"t": "feedback", "buyer_id": buyer.user_id, "item_id": item_id,
                         "vote": vote, "step": 1})
            return {"seller_id": seller_id}

    def revoke_feedback(self, request: Request, item_id: int, vote: str) -> dict:
        """Undo ``record_feedback`` when the item's own vote could not be stored."""
        with self._lock:
            buyer = self._buyer(request)[1]
            if item_id in buyer.feedback_given:
                self.change({"t": "feedback", "buyer_id": buyer.user_id, "item_id": item_id,
                             "vote": vote, "step": -1})
            return {}

    # -- changes: the only code that modifies state -----------------------------

    def change(self, record: dict) -> None:
        """Apply one change and journal it. Hold the lock."""
        self.apply(record)
        self.record(record)

    def apply(self, record: dict) -> None:
        getattr(self, "_apply_" + record["t"])(record)

    def _apply_account(self, r: dict) -> None:
        role = r["role"]
        account = (Seller if role == "seller" else Buyer)(
            r["user_id"], r["name"], bytes.fromhex(r["salt"]), bytes.fromhex(r["hash"]))
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

    def _apply_purchase(self, r: dict) -> None:
        session = self._sessions[r["token"]]
        buyer = self._accounts["buyer"][session.user_id]
        purchase = r["purchase"]
        sellers = self._accounts["seller"]
        for line in purchase["lines"]:
            buyer.purchased_items[line["item_id"]] = line["seller_id"]
            buyer.items_purchased += line["quantity"]
            if line["seller_id"] in sellers:
                sellers[line["seller_id"]].items_sold += line["quantity"]
        self._add_purchase(buyer, purchase)
        buyer.saved_cart = {}
        session.cart = {}

    def _add_purchase(self, buyer: Buyer, purchase: dict) -> None:
        view = encode_value(purchase_view(purchase))
        buyer.purchases.append(purchase)
        buyer.purchases_json.append(view)
        self._purchases[purchase["purchase_id"]] = view

    def _apply_cancel(self, r: dict) -> None:
        self._cancelled.update(r["purchase_ids"])

    def _apply_feedback(self, r: dict) -> None:
        buyer = self._accounts["buyer"][r["buyer_id"]]
        if r["step"] > 0:
            buyer.feedback_given.add(r["item_id"])
        else:
            buyer.feedback_given.discard(r["item_id"])
        seller = self._accounts["seller"].get(buyer.purchased_items[r["item_id"]])
        if seller is not None:
            if r["vote"] == "up":
                seller.thumbs_up += r["step"]
            else:
                seller.thumbs_down += r["step"]

    # -- snapshots --------------------------------------------------------------

    def dump(self) -> Any:
        def account(a: Account) -> dict:
            raw = {"user_id": a.user_id, "name": a.name, "salt": a.salt.hex(),
                   "hash": a.password_hash.hex(), "saved_cart": list(a.saved_cart.items())}
            if isinstance(a, Seller):
                raw.update(thumbs_up=a.thumbs_up, thumbs_down=a.thumbs_down,
                           items_sold=a.items_sold)
            else:
                raw.update(items_purchased=a.items_purchased, purchases=a.purchases,
                           purchased_items=list(a.purchased_items.items()),
                           feedback_given=sorted(a.feedback_given))
            return raw
        return {"accounts": {role: [account(a) for a in table.values()]
                             for role, table in self._accounts.items()},
                "sessions": [[token, s.role, s.user_id, list(s.cart.items())]
                             for token, s in self._sessions.items()],
                "cancelled": sorted(self._cancelled)}

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
                    account.feedback_given = set(raw["feedback_given"])
        self._cancelled = set(state["cancelled"])
        now = time.monotonic()
        for token, role, user_id, cart in state["sessions"]:
            self._sessions[token] = Session(role, user_id, now, dict(cart))


def purchase_view(record: dict) -> dict:
    """A stored purchase (cents) as clients see it (dollars)."""
    return {**record, "total": dollars(record["total"]),
            "lines": [{**line, "price": dollars(line["price"]),
                       "line_total": dollars(line["line_total"])} for line in record["lines"]]}


def return_big_blocks_to_the_system() -> None:
    """Make glibc give each scrypt's 16 MiB back when the hash is done.

    Otherwise glibc's growing mmap threshold parks one such block in each of
    its per-thread arenas for good: 200 logins left the process at ~330 MB
    instead of ~30 MB. A no-op where the C library has no ``mallopt``.
    """
    m_mmap_threshold = -3
    try:
        ctypes.CDLL(None).mallopt(m_mmap_threshold, 1 << 20)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> None:
    parser = database_parser("Customer database: accounts, sessions, carts, purchases.",
                             "CUSTOMER_DB", 9002)
    env_default(parser, "--session-timeout", "SESSION_TIMEOUT", DEFAULT_SESSION_TIMEOUT,
                "seconds of inactivity after which a session is removed", type=float)
    args = parser.parse_args(argv)
    return_big_blocks_to_the_system()
    database_main(CustomerDB(args.session_timeout), args)


if __name__ == "__main__":
    main()
