"""Idempotency keys: the first outcome of each keyed write, remembered for ``KEY_TTL``.

A client may send ``idempotency_key`` with any write (contract §11); a frontend
passes it, or a fresh one, to the database that applies the write. ``KeyedOutcomes``
remembers per ``(scope, key)`` what the request was (its fingerprint) and, once it
was applied, its outcome: a result, or a final error. A resend with the same key
gets that outcome and changes nothing more; the same key with another request is
``conflict``. A scope names whose keys they are (``"buyer:7"``, ``"seller-name:alice"``),
so one account's keys never meet another's.

Entries are kept in the order they were made and dropped once older than
``KEY_TTL``: memory follows the write rate over ten minutes, not time. A key a
frontend made for a write its client sent without one (``frontend_key``, longer than
any client's key, so a database tells them apart) can only be resent by that frontend
within seconds; it is kept ``FRONTEND_KEY_TTL``, so such writes cost little memory.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from market.config import (
    CLIENT_KEY_LENGTH,
    FRONTEND_KEY_LENGTH,
    FRONTEND_KEY_TTL,
    KEY_TTL,
)
from protocol import ApiError, Str, Validator

_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_-]+")


@dataclass
class IdempotencyKey(Validator):
    """16 to ``longest`` characters from A-Z a-z 0-9 _ -."""

    longest: int = CLIENT_KEY_LENGTH

    def __call__(self, name: str, value: Any) -> str:
        if (not isinstance(value, str) or not 16 <= len(value) <= self.longest
                or not _KEY_CHARACTERS.fullmatch(value)):
            raise self.fail(name, f"a string of 16 to {self.longest} characters from "
                                  "A-Z a-z 0-9 _ -")
        return value


IDEMPOTENCY_KEY = IdempotencyKey()  # a client's
FINGERPRINT = Str(32, 32, no_space=True)  # what ``fingerprint`` returns
OWN_KEY_FINGERPRINT = "-" * 32  # a frontend's own key's: that key names one request only
# The args of an internal write declared ``keyed``: its key (the client's, or the
# frontend's own) and the public request's fingerprint.
KEYED_ARGS = {"key": IdempotencyKey(FRONTEND_KEY_LENGTH), "fingerprint": FINGERPRINT}


def fresh_key() -> str:
    """A new client's key (32 characters), as the CLIs send with each write."""
    return secrets.token_urlsafe(24)


def frontend_key() -> str:
    """A frontend's key for a write its client sent without one (``FRONTEND_KEY_LENGTH``):
    this process's random prefix and a count, unique without a system call per key."""
    return f"{_FRONTEND_KEY_PREFIX}{next(_frontend_keys):016d}"


_FRONTEND_KEY_PREFIX = secrets.token_urlsafe(42)  # 56 characters: with 16 digits, 72
_frontend_keys = itertools.count()


def is_frontends(key: str) -> bool:
    return len(key) > CLIENT_KEY_LENGTH


def step_key(key: str, step: str) -> str:
    """The key of one step of a keyed write (``"purchase"``, ``"vote"``), derived from the
    write's key, so that a resend of the write finds each step's first outcome."""
    return hashlib.sha256(f"{key}/{step}".encode()).hexdigest()[:32]


def fingerprint(op: str, args: dict) -> str:
    """What a keyed request asked for, so that a key reused for another request is caught."""
    text = json.dumps([op, args], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Outcome:
    """One key's entry: what was asked, when, and (once applied) what came of it."""

    fingerprint: str
    at: float  # wall-clock seconds, so that a replayed journal ages it correctly
    result: Any = None
    error: tuple[str, str] | None = None  # (code, message) of a final error

    def replay(self) -> Any:
        """The first outcome again: its result, or its final error raised."""
        if self.error is not None:
            raise ApiError(*self.error)
        return self.result


class KeyedOutcomes:
    """``(scope, key) -> Outcome``, oldest first, clients' keys and frontends' apart (each
    with its time to live). Not locked: its database's lock guards it."""

    def __init__(self, ttl: float = KEY_TTL, frontend_ttl: float = FRONTEND_KEY_TTL) -> None:
        self.ttl = ttl
        self.frontend_ttl = frontend_ttl
        self._clients: OrderedDict[tuple[str, str], Outcome] = OrderedDict()
        self._frontends: OrderedDict[tuple[str, str], Outcome] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients) + len(self._frontends)

    def _lane(self, key: str) -> OrderedDict[tuple[str, str], Outcome]:
        return self._frontends if is_frontends(key) else self._clients

    def find(self, scope: str, key: str, print_: str) -> Outcome | None:
        """The entry of this key, or None if it is new; ``conflict`` if it was used for
        another request."""
        entry = self._lane(key).get((scope, key))
        if entry is None:
            return None
        if entry.fingerprint != print_:
            raise ApiError("conflict", "This idempotency_key was already used for another "
                                       "request; use a new key for a new request.")
        return entry

    def remember(self, scope: str, key: str, print_: str, at: float,
                 result: Any = None, error: tuple[str, str] | None = None) -> Outcome:
        """Record (or complete) the entry of a key."""
        lane = self._lane(key)
        entry = lane.get((scope, key))
        if entry is None:
            entry = lane[(scope, key)] = Outcome(print_, at)
        if result is not None:
            entry.result = result
        if error is not None:
            entry.error = error
        return entry

    def keep(self, record: dict, result: Any) -> None:
        """Remember ``result`` (JSON) as the outcome of the keyed write that journal
        ``record`` made, if it is one (its ``"keyed"``: scope, key, fingerprint, at):
        called by the record's applier, live and on replay; older records have none."""
        keyed = record.get("keyed")
        if keyed is not None:
            self.remember(keyed["scope"], keyed["key"], keyed["fingerprint"], keyed["at"],
                          result)

    def forget_expired(self, now: float | None = None) -> int:
        """Drop entries older than their time to live; returns how many."""
        now = time.time() if now is None else now
        dropped = 0
        for lane, ttl in ((self._clients, self.ttl), (self._frontends, self.frontend_ttl)):
            while lane:
                scope_key, entry = next(iter(lane.items()))
                if entry.at >= now - ttl:
                    break
                del lane[scope_key]
                dropped += 1
        return dropped

    def dump(self) -> list[list]:
        return [[scope, key, e.fingerprint, e.at, e.result, list(e.error) if e.error else None]
                for lane in (self._clients, self._frontends)
                for (scope, key), e in lane.items()]

    def restore(self, rows: list[list]) -> None:
        for scope, key, print_, at, result, error in rows:
            self.remember(scope, key, print_, at, result, tuple(error) if error else None)
