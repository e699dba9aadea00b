"""Accounts and sessions of the customer database: who may log in, and who is logged in.

``Accounts`` holds each role's accounts (name, salt, password hash; the
frontends hash, this compares hashes only). A name is unique within its role
case-insensitively (``name_key``); a login names its account exactly or by that
key, unless the key is shared by accounts stored before that rule, which then
log in by their exact names only. ``Sessions`` holds the live
sessions: a session ends on ``Logout``, after ``timeout`` seconds idle, or when
its account logs in once more with ``MAX_SESSIONS_PER_ACCOUNT`` sessions live
(the least recently used one ends).

Not thread-safe: the customer database holds its lock around all of it, and
decides and journals every change (the ``add``/``begin``/``end`` here only apply).
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from market.config import MAX_SESSIONS_PER_ACCOUNT
from market.fields import name_key
from protocol import ApiError


class Role(enum.StrEnum):
    BUYER = "buyer"
    SELLER = "seller"


@dataclass
class Account:
    role: Role
    user_id: int
    name: str
    salt: bytes
    password_hash: bytes
    cost: int  # the scrypt cost the hash was made with

    def record(self) -> dict:
        """The account as journaled and snapshotted (without the role)."""
        return {"user_id": self.user_id, "name": self.name, "salt": self.salt.hex(),
                "hash": self.password_hash.hex(), "cost": self.cost}


class Accounts:
    """The accounts of both roles."""

    def __init__(self, first_id: int = 1) -> None:
        self._pepper = secrets.token_bytes(32)  # made-up salts of unknown names
        # Invariants: a name is unique within its role and names one account;
        # _by_key holds every account of _by_name under its name_key, and a key holds
        # more than one account only when they were all stored before new_id checked
        # keys (old data: 'Bob' and 'bob'); ids go up within a role and are never handed
        # out twice (_next_id is above every id of its role).
        self._by_id: dict[Role, dict[int, Account]] = {role: {} for role in Role}
        self._by_name: dict[Role, dict[str, Account]] = {role: {} for role in Role}
        self._by_key: dict[Role, dict[str, list[Account]]] = {role: {} for role in Role}
        self._next_id = {role: first_id for role in Role}

    def __len__(self) -> int:
        return sum(len(table) for table in self._by_id.values())

    def get(self, role: Role, user_id: int) -> Account | None:
        return self._by_id[role].get(user_id)

    def ids(self, role: Role) -> list[int]:
        """The ids of ``role``'s accounts, rising."""
        return sorted(self._by_id[role])

    def named(self, role: Role, name: str) -> Account | None:
        """The account ``name`` logs in to: the one of exactly that name, else the only
        one whose name has the same ``name_key`` ('BOB' -> 'bob'); None when there is
        none, or several (old 'Bob' and 'bob': each answers to its exact name only)."""
        account = self._by_name[role].get(name)
        if account is not None:
            return account
        same = self._by_key[role].get(name_key(name), ())
        return same[0] if len(same) == 1 else None

    def new_id(self, role: Role, name: str) -> int:
        """The id a new account of ``name`` gets; ``conflict`` if the name is taken,
        in any case ('Bob' once 'bob' is)."""
        if name in self._by_name[role] or name_key(name) in self._by_key[role]:
            raise ApiError("conflict", f"The {role} name '{name}' is taken.")
        return self._next_id[role]

    def add(self, role: Role, record: dict) -> None:
        account = Account(role, record["user_id"], record["name"], bytes.fromhex(record["salt"]),
                          bytes.fromhex(record["hash"]), record["cost"])
        self._by_id[role][account.user_id] = account
        self._by_name[role][account.name] = account
        self._by_key[role].setdefault(name_key(account.name), []).append(account)
        self._next_id[role] = max(self._next_id[role], account.user_id + 1)

    def salt(self, role: Role, name: str) -> dict:
        """The salt and cost to hash a login with; an unknown name gets a made-up salt
        (the same each time) and no cost, so the frontend pays one hash either way."""
        account = self.named(role, name)
        if account is not None:
            return {"salt": account.salt.hex(), "cost": account.cost}
        made_up = hmac.new(self._pepper, f"{role}:{name}".encode(), hashlib.sha256)
        return {"salt": made_up.digest()[:16].hex(), "cost": None}

    def verify(self, role: Role, name: str, password_hash: bytes) -> Account:
        """The account whose name and hash these are, else ``auth_failed`` (the same for both)."""
        account = self.named(role, name)
        if account is None or not hmac.compare_digest(password_hash, account.password_hash):
            raise ApiError("auth_failed", "Wrong username or password.")
        return account

    def dump(self) -> dict:
        return {role.value: [account.record() for account in table.values()]
                for role, table in self._by_id.items()}

    def restore(self, state: dict) -> None:
        for role, records in state.items():
            for record in records:
                self.add(Role(role), record)


@dataclass
class Session:
    token: str
    role: Role
    user_id: int
    last_active: float  # time.monotonic() of its last successful use


class Sessions:
    """The live sessions, in order of last use, by token and by account."""

    def __init__(self, timeout: float, per_account: int = MAX_SESSIONS_PER_ACCOUNT) -> None:
        self.timeout = timeout
        self.per_account = per_account
        # Invariants: _by_token and _by_account hold the same sessions, each in
        # order of last use (least recent first); an account has at most
        # per_account sessions (the database ends the least recent one, found by
        # least_recent_over_cap, before it begins another).
        self._by_token: OrderedDict[str, Session] = OrderedDict()
        self._by_account: dict[tuple[Role, int], OrderedDict[str, Session]] = {}

    def __len__(self) -> int:
        return len(self._by_token)

    def get(self, token: str | None, role: Role) -> Session:
        """The session of ``role`` behind ``token`` (expired or not), else ``invalid_session``."""
        session = self._by_token.get(token) if token else None
        if session is None or session.role != role:
            raise ApiError("invalid_session", "The session is unknown, expired or logged out.")
        return session

    def expired(self, session: Session, now: float) -> bool:
        return now - session.last_active > self.timeout

    def touch(self, session: Session, now: float) -> None:
        """Mark the session used now."""
        session.last_active = now
        self._by_token.move_to_end(session.token)
        self._by_account[session.role, session.user_id].move_to_end(session.token)

    def touch_all(self, now: float) -> None:
        """Mark every session used now (their order of use stays)."""
        for session in self._by_token.values():
            session.last_active = now

    def idle(self, now: float) -> list[str]:
        """The tokens of sessions idle longer than ``timeout``."""
        tokens = []
        for token, session in self._by_token.items():
            if not self.expired(session, now):
                break
            tokens.append(token)
        return tokens

    def least_recent_over_cap(self, role: Role, user_id: int) -> str | None:
        """The session to end before the account begins one more, if it has its fill."""
        sessions = self._by_account.get((role, user_id), {})
        return next(iter(sessions)) if len(sessions) >= self.per_account else None

    def of_account(self, role: Role, user_id: int) -> list[str]:
        """The account's tokens, least recently used first."""
        return list(self._by_account.get((role, user_id), {}))

    def begin(self, token: str, role: Role, user_id: int, now: float) -> None:
        session = Session(token, role, user_id, now)
        self._by_token[token] = session
        self._by_account.setdefault((role, user_id), OrderedDict())[token] = session

    def end(self, token: str) -> Session | None:
        session = self._by_token.pop(token, None)
        if session is not None:
            mine = self._by_account[session.role, session.user_id]
            del mine[token]
            if not mine:
                del self._by_account[session.role, session.user_id]
        return session

    def dump(self) -> list[dict]:
        return [{"token": s.token, "role": s.role.value, "user_id": s.user_id}
                for s in self._by_token.values()]

    def restore(self, state: list[dict], now: float | None = None) -> None:
        """The sessions of a snapshot, each used last ``now`` (in their order of last use)."""
        now = time.monotonic() if now is None else now
        for raw in state:
            self.begin(raw["token"], Role(raw["role"]), raw["user_id"], now)
