"""Customer database service: buyers, sellers, sessions, carts, purchases, seller feedback.

Internal ops, spoken only by the frontends. Money is in integer cents here;
the frontends turn it into dollars for clients.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from protocol import (ApiError, Int, ITEM_ID, ListOf, Op, Optional, PASSWORD, PURCHASE_ID,
                      QUANTITY, Record, ROLE, Request, Service, Str, USERNAME, VOTE, env_default,
                      serve, service_parser)

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
    purchases: list[dict] = field(default_factory=list)
    purchased_items: dict[int, int] = field(default_factory=dict)  # item_id -> seller_id
    feedback_given: set[int] = field(default_factory=set)
    purchase_ids: set[str] = field(default_factory=set)


@dataclass
class Session:
    role: str
    user_id: int
    last_active: float
    cart: dict[int, int] = field(default_factory=dict)  # item_id -> units, in insertion order


PURCHASE_LINE = {"item_id": ITEM_ID, "name": Str(1, 32), "quantity": QUANTITY,
                 "price": Int(1, 100_000_000), "seller_id": Int(1)}


class CustomerDB(Service):
    name = "customer database"

    def __init__(self, session_timeout: float = DEFAULT_SESSION_TIMEOUT) -> None:
        self.session_timeout = session_timeout
        # One lock guards every table below. Invariants it keeps: usernames are
        # unique per role; every session names an existing account; a buyer's
        # counters, purchases and feedback change together; a purchase id is
        # applied at most once.
        self._lock = threading.Lock()
        self._accounts: dict[str, dict[int, Account]] = {"buyer": {}, "seller": {}}
        self._by_name: dict[str, dict[str, Account]] = {"buyer": {}, "seller": {}}
        self._sessions: dict[str, Session] = {}
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
            "GetPurchases": Op(self.get_purchases),
            "RecordFeedback": Op(self.record_feedback, {"item_id": ITEM_ID,
                                                        "vote": VOTE}),
            "RevokeFeedback": Op(self.revoke_feedback, {"item_id": ITEM_ID,
                                                        "vote": VOTE}),
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
                    del self._sessions[token]

    def _session(self, request: Request, role: str) -> Session:
        """The live session of ``role`` behind the request's token, refreshed. Hold the lock."""
        session = self._sessions.get(request.session)
        now = time.monotonic()
        if session is None or session.role != role:
            raise ApiError("invalid_session", "The session is unknown, expired or logged out.")
        if now - session.last_active > self.session_timeout:
            del self._sessions[request.session]
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
            self._next_id[role] += 1
            account = (Seller if role == "seller" else Buyer)(user_id, username, salt, digest)
            self._accounts[role][user_id] = account
            self._by_name[role][username] = account
        return {"user_id": user_id}

    def login(self, request: Request, role: str, username: str, password: str) -> dict:
        account = self._by_name[role].get(username)
        salt = account.salt if account else b"no such account!"
        digest = hash_password(password, salt)  # hashed even for unknown names: same timing
        if account is None or not hmac.compare_digest(digest, account.password_hash):
            raise ApiError("auth_failed", "Wrong username or password.")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = Session(role, account.user_id, time.monotonic(),
                                            dict(account.saved_cart))
        return {"session": token, "user_id": account.user_id}

    def logout(self, request: Request, role: str) -> dict:
        with self._lock:
            self._session(request, role)
            del self._sessions[request.session]
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
            cart = self._buyer(request)[0].cart
            wanted = cart.get(item_id, 0) + quantity
            if wanted > available:
                raise ApiError("conflict", f"Only {available} units of item {item_id} are "
                                           f"available and the cart would hold {wanted}.")
            cart[item_id] = wanted
            return {"cart": list(cart.items())}

    def remove_from_cart(self, request: Request, item_id: int, quantity: int) -> dict:
        with self._lock:
            cart = self._buyer(request)[0].cart
            if item_id in cart:
                if cart[item_id] > quantity:
                    cart[item_id] -= quantity
                else:
                    del cart[item_id]
            return {"cart": list(cart.items())}

    def save_cart(self, request: Request) -> dict:
        with self._lock:
            session, buyer = self._buyer(request)
            buyer.saved_cart = dict(session.cart)
            return {"cart": list(session.cart.items())}

    def clear_cart(self, request: Request) -> dict:
        with self._lock:
            session = self._buyer(request)[0]
            session.cart.clear()
            return {"cart": []}

    # -- purchases ------------------------------------------------------------

    def start_purchase(self, request: Request) -> dict:
        """Check the session and return what the purchase will try to buy."""
        with self._lock:
            session = self._buyer(request)[0]
            if not session.cart:
                raise ApiError("conflict", "The cart is empty: there is nothing to buy.")
            return {"buyer_id": session.user_id, "cart": list(session.cart.items())}

    def commit_purchase(self, request: Request, purchase_id: str, lines: list[dict],
                        card_last4: str) -> dict:
        """Record a purchase whose units the product database has already taken.

        Applying the same ``purchase_id`` twice returns the first record unchanged.
        """
        with self._lock:
            session, buyer = self._buyer(request)
            if purchase_id in buyer.purchase_ids:
                return {"purchase": next(p for p in buyer.purchases
                                         if p["purchase_id"] == purchase_id)}
            sellers = self._accounts["seller"]
            record_lines = []
            for line in lines:
                record_lines.append({**line, "line_total": line["price"] * line["quantity"]})
                buyer.purchased_items[line["item_id"]] = line["seller_id"]
                buyer.items_purchased += line["quantity"]
                if line["seller_id"] in sellers:
                    sellers[line["seller_id"]].items_sold += line["quantity"]
            purchase = {"purchase_id": purchase_id, "time": utc_now_iso(), "lines": record_lines,
                        "total": sum(line["line_total"] for line in record_lines),
                        "card_last4": card_last4}
            buyer.purchases.append(purchase)
            buyer.purchase_ids.add(purchase_id)
            buyer.saved_cart = {}
            session.cart.clear()
            return {"purchase": purchase}

    def get_purchases(self, request: Request) -> dict:
        with self._lock:
            buyer = self._buyer(request)[1]
            return {"purchases": list(buyer.purchases), "items_purchased": buyer.items_purchased}

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
            buyer.feedback_given.add(item_id)
            self._count_vote(seller_id, vote, +1)
            return {"seller_id": seller_id}

    def revoke_feedback(self, request: Request, item_id: int, vote: str) -> dict:
        """Undo ``record_feedback`` when the item's own vote could not be stored."""
        with self._lock:
            buyer = self._buyer(request)[1]
            if item_id in buyer.feedback_given:
                buyer.feedback_given.discard(item_id)
                self._count_vote(buyer.purchased_items[item_id], vote, -1)
            return {}

    def _count_vote(self, seller_id: int, vote: str, step: int) -> None:
        seller = self._accounts["seller"].get(seller_id)
        if seller is not None:
            if vote == "up":
                seller.thumbs_up += step
            else:
                seller.thumbs_down += step


def main(argv: list[str] | None = None) -> None:
    parser = service_parser("Customer database: accounts, sessions, carts, purchases.",
                            "CUSTOMER_DB", 9002)
    env_default(parser, "--session-timeout", "SESSION_TIMEOUT", DEFAULT_SESSION_TIMEOUT,
                "seconds of inactivity after which a session is removed", type=float)
    args = parser.parse_args(argv)
    serve(CustomerDB(args.session_timeout), args)


if __name__ == "__main__":
    main()
