"""Keyed writes: each applied at most once per key, a resend told the first outcome.

``KeyedOutcomes`` remembers per ``(scope, key)`` what the request was (its fingerprint)
and, once it was applied, its outcome: a result, or a final error (``market.errors.
FINAL_ERRORS``). A resend with the same key gets that outcome and changes nothing more;
the same key with another request is ``conflict``. A scope names whose keys they are
(``"buyer:7"``, ``"seller-name:alice"``), so one account's keys never meet another's.

The outcome is journaled with the change it keys: a keyed record carries ``"keyed"``
(scope, key, fingerprint, time) and its applier returns the result, which
``Database.apply`` remembers, live and on replay alike.

Entries are kept in the order they were made and dropped once older than ``ttl``
(``--key-ttl``, ``KEY_TTL`` by default): memory follows the write rate over ten minutes,
not time. A key a frontend made for a write its client sent without one
(``market.keys.frontend_key``) can only be resent by that frontend within seconds; it is
kept ``FRONTEND_KEY_TTL``, so such writes cost little, and their memory is bounded by that
minute times the database's write rate, whoever writes. One account (one scope) may have at
most ``KEY_QUOTA`` of its clients' keys remembered at once: past that, a write with a
client's key is refused (``resource_exhausted``) before it changes anything, so no account
can fill a database's memory over the ten minutes those keys live (``over_quota`` counts
the refusals).
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from market.config import FRONTEND_KEY_TTL, KEY_QUOTA, KEY_TTL
from market.keys import is_frontends
from protocol import ApiError


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

    def __init__(self, ttl: float = KEY_TTL, frontend_ttl: float = FRONTEND_KEY_TTL,
                 quota: int = KEY_QUOTA) -> None:
        self.ttl = ttl
        self.frontend_ttl = frontend_ttl
        self.quota = quota
        self.over_quota = 0  # keyed writes refused for their account's quota
        # Invariant: _per_scope counts each scope's entries of clients' keys (none at 0).
        self._clients: OrderedDict[tuple[str, str], Outcome] = OrderedDict()
        self._frontends: OrderedDict[tuple[str, str], Outcome] = OrderedDict()
        self._per_scope: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._clients) + len(self._frontends)

    def _lane(self, key: str) -> OrderedDict[tuple[str, str], Outcome]:
        return self._frontends if is_frontends(key) else self._clients

    def find(self, scope: str, key: str, fingerprint: str) -> Outcome | None:
        """The entry of this key, or None if it is new; ``conflict`` if it was used for
        another request."""
        entry = self._lane(key).get((scope, key))
        if entry is None:
            return None
        if entry.fingerprint != fingerprint:
            raise ApiError("conflict", "This idempotency_key was already used for another "
                                       "request; use a new key for a new request.")
        return entry

    def check_quota(self, scope: str, key: str) -> None:
        """``resource_exhausted`` if ``key`` is a client's and ``scope`` has its fill of
        clients' keys remembered."""
        if not is_frontends(key) and self._per_scope.get(scope, 0) >= self.quota:
            self.over_quota += 1
            raise ApiError("resource_exhausted", "Too many requests from this account; nothing "
                                                 "was changed; slow down and try again later.")

    def remember(self, keyed: dict, result: Any = None,
                 error: tuple[str, str] | None = None) -> Outcome:
        """Record (or complete) the entry of a key; ``keyed`` is what a keyed record carries:
        its scope, key, fingerprint and time."""
        lane = self._lane(keyed["key"])
        entry = lane.get((keyed["scope"], keyed["key"]))
        if entry is None:
            entry = lane[(keyed["scope"], keyed["key"])] = Outcome(keyed["fingerprint"],
                                                                   keyed["at"])
            if lane is self._clients:
                self._per_scope[keyed["scope"]] = self._per_scope.get(keyed["scope"], 0) + 1
        if result is not None:
            entry.result = result
        if error is not None:
            entry.error = error
        return entry

    def forget_expired(self, now: float | None = None) -> int:
        """Drop entries older than their time to live; returns how many."""
        now = time.time() if now is None else now
        dropped = 0
        for lane, ttl in ((self._clients, self.ttl), (self._frontends, self.frontend_ttl)):
            while lane:
                (scope, key), entry = next(iter(lane.items()))
                if entry.at >= now - ttl:
                    break
                del lane[scope, key]
                if lane is self._clients:
                    left = self._per_scope.pop(scope) - 1
                    if left:
                        self._per_scope[scope] = left
                dropped += 1
        return dropped

    def stats(self) -> dict:
        """For ``Stats``: keys remembered (``clients'``: those clients sent), the quota of
        clients' keys per account and how many writes it refused."""
        return {"remembered": len(self), "clients": len(self._clients), "quota": self.quota,
                "over_quota": self.over_quota}

    def dump(self) -> list[list]:
        return [[scope, key, e.fingerprint, e.at, e.result, list(e.error) if e.error else None]
                for lane in (self._clients, self._frontends)
                for (scope, key), e in lane.items()]

    def restore(self, rows: list[list]) -> None:
        for scope, key, fingerprint, at, result, error in rows:
            self.remember({"scope": scope, "key": key, "fingerprint": fingerprint, "at": at},
                          result, tuple(error) if error else None)
