"""Calling a database object in this process, the way the unit tests do: build a
``ProductDB`` or ``CustomerDB`` and hand it requests, either as a message straight to
``dispatch`` (its result, or an ``ApiError`` raised) or as a request line to
``respond`` (the reply decoded, as a client would read it off a socket).

    db = CustomerDB()
    token = signed_up(db, "buyer", "ann")       # CreateAccount, then Login
    dispatch(db, "AddToCart", token, item_id=1, quantity=1, available=5, **keyed())
    ask(db, "GetCart", token)                   # {"ok": True, "result": ..., "id": None}
    call(db, "GetCart", token)                  # the result of a reply that must be ok
"""
from __future__ import annotations

import json
import threading

import pytest

from protocol import ApiError

from .market import keyed  # noqa: F401  (the unit tests take it from here)

# An account's password as the customer database sees it: the frontend's salt and scrypt
# hash (hex), made once (``cost`` 10); the database never sees a password.
SALT, HASH = "00" * 16, "11" * 32


def dispatch(db, op: str, session: str | None = None, **args):
    """``op`` handed to ``db.dispatch`` as a decoded message: its result, or raises."""
    message: dict = {"op": op, "args": args}
    if session is not None:
        message["session"] = session
    return db.dispatch(message)


def create_account(db, role: str, name: str) -> int:
    """A new account (``SALT``, ``HASH``, cost 10) through ``dispatch``; its user id."""
    return dispatch(db, "CreateAccount", role=role, username=name, salt=SALT, hash=HASH,
                    cost=10, **keyed())["user_id"]


def log_in(db, role: str, name: str) -> str:
    """A new session of the account ``name`` through ``dispatch``; its token."""
    return dispatch(db, "Login", role=role, username=name, hash=HASH)["session"]


def signed_up(db, role: str, name: str) -> str:
    """``create_account`` then ``log_in``: the new account's session token."""
    create_account(db, role, name)
    return log_in(db, role, name)


def reply_to(db, line: bytes, peer=None) -> dict:
    """The decoded reply of ``db.respond`` to one raw request line (the newline added)
    from ``peer`` (by default a connection of its own)."""
    return json.loads(db.respond(line + b"\n", peer))


def ask(db, op: str, session: str | None = None, deadline: float | None = None,
        **args) -> dict:
    """The decoded reply to one request line, as over a socket."""
    message: dict = {"op": op, "args": args}
    if session is not None:
        message["session"] = session
    if deadline is not None:
        message["deadline"] = deadline
    return reply_to(db, json.dumps(message).encode())


def call(db, op: str, session: str | None = None, **args) -> dict:
    """The result of one request line whose reply must be ok."""
    reply = ask(db, op, session, **args)
    assert reply["ok"], reply
    return reply["result"]


def in_thread(target, *args, **kwargs) -> threading.Thread:
    """``target(*args, **kwargs)`` running on a daemon thread of its own, started."""
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


class NoData:
    """A database's data holding nothing (for a test database of its own: ``make_data``)."""

    appliers: dict = {}

    def followed_page(self, after: int) -> tuple[list[dict], int | None]:
        return [], None

    def dump(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        pass

    def stats(self) -> dict:
        return {}


def stored_account(user_id: int, name: str) -> dict:
    """An account's record as the customer database journals it (``SALT``, ``HASH``)."""
    return {"user_id": user_id, "name": name, "salt": SALT, "hash": HASH, "cost": 10}


def code_of(call, *args) -> str:
    """The error code ``call(*args)`` raises (it must raise an ``ApiError``)."""
    with pytest.raises(ApiError) as failure:
        call(*args)
    return failure.value.code
