"""Idempotency keys as every part makes and checks them (contract §11).

A client may send ``idempotency_key`` with any write; a frontend passes it, or one of its
own (``frontend_key``: longer than any client's key, so a database tells them apart), to
the database that applies the write, with the ``fingerprint`` of what was asked. The CLIs
make theirs with ``fresh_key``; a write spanning both databases derives the key of each
step from its own (``step_key``). What a database remembers of each key is
``market.database.keyed``'s.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from market.config import (
    CLIENT_KEY_LENGTH,
    FRONTEND_KEY_LENGTH,
)
from protocol import Str, Validator

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


def card_print(key: bytes, card_number: str) -> str:
    """What a purchase's fingerprint sees of a card number: an HMAC keyed with the deployment
    secret (``key``), so that a journal read offline cannot be searched for card numbers."""
    return hmac.new(key, card_number.encode(), hashlib.sha256).hexdigest()[:32]


def vote_key(buyer_id: int, item_id: int, attempt: int) -> str:
    """The key of one buyer's vote on one item, the same on both databases: ``attempt``
    counts the buyer's votes on the item refused before this one."""
    return f"{buyer_id}.{item_id}.{attempt}"


def read_vote_key(key: str) -> tuple[int, int, int] | None:
    """(buyer_id, item_id, attempt) of a ``vote_key``; None for a key of another shape (as
    data written before vote keys had this one holds)."""
    parts = key.split(".")
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    buyer_id, item_id, attempt = (int(part) for part in parts)
    return buyer_id, item_id, attempt


def fingerprint(op: str, args: dict) -> str:
    """What a keyed request asked for, so that a key reused for another request is caught."""
    text = json.dumps([op, args], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]

