"""Session leases: a frontend checks a session without asking the customer database, and a
session that ends is still refused at every frontend from the moment its end is acknowledged.

The model is Gray and Cheriton's leases and Redis's server-assisted client-side caching:

- Each frontend has a *holder* id and keeps one ``WatchSessions`` long poll open to the
  customer database (``SessionCache.watch_forever``). A ``CheckSession`` naming the holder
  is granted a lease of ``length`` seconds on the token (``Leases.grant``, under the
  database's lock, right after the session was found live and marked used).
- While its lease is in its first half, the frontend answers the token's session check from
  its ``SessionCache``; a use in the second half asks ``CheckSession`` again (renewing the
  lease and the idle timer). The database counts the session as used until the first half
  ends, so use refreshes the idle timer even when the database does not see it, and no
  session expires while a frontend may answer for it: an idle session expires at most
  ``length / 2`` late (``length`` is at most a tenth of the session timeout), never early.
- When the database ends a session (``Logout``, the sweeper, the per-account cap), it calls
  ``Leases.revoke`` after the change and before it acknowledges anything: every holder of
  a live lease on the token is told (the reply to its waiting ``WatchSessions``), and
  ``revoke`` returns once each has confirmed (its next ``WatchSessions`` says ``seen``) or
  its lease has run out, whichever comes first. A frontend that never confirms costs at
  most the rest of its lease; one whose watch fails forgets every lease at once.
- A database restarted on its data directory knows nothing of the leases its previous run
  granted on the sessions it kept; those end within ``length`` of the restart, so for that
  long every revoke waits them out (``restarted``). A memory-only one keeps no sessions.

Leases live only in memory on both sides (nothing on disk changes).
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

from market.config import (
    LEASE_HOLDER_FORGOTTEN,
    LEASE_HOLDER_GONE,
    MAX_LEASE,
    WATCH_WAIT,
)
from protocol import ApiError

log = logging.getLogger("market.replication.leases")


def lease_length(session_timeout: float) -> float:
    return min(MAX_LEASE, session_timeout / 10)


@dataclass
class Holder:
    """One frontend's watch, as the database sees it."""

    polled: float  # time.monotonic() its latest watch arrived or was answered
    watching: int = 0  # watches waiting now
    told: int = 0  # number of the latest token queued for it
    seen: int = 0  # every token numbered up to this one is confirmed
    pending: list[tuple[int, str]] = field(default_factory=list)  # (number, token) unconfirmed


class Leases:
    """The customer database's leases on session tokens, per holder. Thread-safe; call
    ``grant`` under the database's lock (so a revoke after the session's end sees the lease)
    and ``revoke``/``watch`` without it (they wait)."""

    def __init__(self, length: float) -> None:
        self.length = length
        self.epoch = secrets.token_hex(8)  # this run's: numbers of another run mean nothing
        # Guards everything below; notified whenever a token is queued or confirmed.
        # Invariant: a holder's pending tokens are exactly those queued and not yet seen.
        self._changed = threading.Condition(threading.Lock())
        self._holders: dict[str, Holder] = {}
        self._leases: dict[str, dict[str, float]] = {}  # token -> holder -> lease end
        self._earlier_run_ends = 0.0  # time.monotonic() by which a previous run's leases end

    def restarted(self) -> None:
        """The sessions were loaded from disk: wait out the leases the previous run granted."""
        with self._changed:
            self._earlier_run_ends = time.monotonic() + self.length

    def grant(self, token: str, holder: str | None) -> float:
        """Lease ``token`` to ``holder`` if it is watching; the lease's length, else 0."""
        if holder is None:
            return 0.0
        now = time.monotonic()
        with self._changed:
            watcher = self._holders.get(holder)
            gone = watcher is None or (not watcher.watching
                                       and now - watcher.polled > LEASE_HOLDER_GONE)
            if gone:
                return 0.0
            self._leases.setdefault(token, {})[holder] = now + self.length
        return self.length

    def revoke(self, tokens: list[str]) -> None:
        """Tell each holder of a live lease on ``tokens``; return once each confirmed or its
        lease ran out (and no sooner than the leases of an earlier run end)."""
        if not tokens:
            return
        now = time.monotonic()
        waits: list[tuple[Holder, int, float]] = []
        with self._changed:
            until = self._earlier_run_ends
            for token in tokens:
                for name, end in self._leases.pop(token, {}).items():
                    watcher = self._holders.get(name)
                    if end <= now:
                        continue
                    if watcher is None:
                        until = max(until, end)
                        continue
                    watcher.told += 1
                    watcher.pending.append((watcher.told, token))
                    waits.append((watcher, watcher.told, end))
            self._changed.notify_all()
            while True:
                now = time.monotonic()
                open_ends = [end for watcher, number, end in waits
                             if watcher.seen < number and now < end]
                if not open_ends and now >= until:
                    return
                self._changed.wait(max(open_ends + [until]) - now)

    def watch(self, holder: str, epoch: str, seen: int, wait: float) -> dict:
        """Confirm the tokens up to ``seen`` (numbers of this run's ``epoch`` only), then wait
        up to ``wait`` seconds for tokens to tell ``holder`` (not at all for a watch of another
        epoch: it learns this one's at once): ``{"epoch", "tokens", "upto"}``."""
        with self._changed:
            watcher = self._holders.setdefault(holder, Holder(time.monotonic()))
            if epoch == self.epoch and seen > watcher.seen:
                watcher.seen = min(seen, watcher.told)
                watcher.pending = [p for p in watcher.pending if p[0] > watcher.seen]
                self._changed.notify_all()
            watcher.watching += 1
            ends = time.monotonic() + (wait if epoch == self.epoch else 0.0)  # new: say epoch
            try:
                while not watcher.pending and (left := ends - time.monotonic()) > 0:
                    self._changed.wait(left)
            finally:
                watcher.watching -= 1
                watcher.polled = time.monotonic()
            return {"epoch": self.epoch, "tokens": [token for _, token in watcher.pending],
                    "upto": watcher.told}

    def prune(self) -> None:
        """Drop leases that ran out and holders gone for long (bounded bookkeeping)."""
        now = time.monotonic()
        with self._changed:
            for token in [t for t, held in self._leases.items() if max(held.values()) <= now]:
                del self._leases[token]
            for name in [name for name, w in self._holders.items()
                         if not w.watching and now - w.polled > LEASE_HOLDER_FORGOTTEN]:
                del self._holders[name]


class SessionCache:
    """A frontend's leased sessions: token -> user id, while the lease is in its first half.

    ``lookup`` reads without the lock: an entry is one tuple, replaced or removed whole.
    The watch thread removes the tokens it is told of before it confirms them, so a
    lookup that still finds one runs before the end is acknowledged.
    """

    def __init__(self) -> None:
        self.holder = secrets.token_hex(8)
        self.watching = False  # the latest watch succeeded: leases may be asked for and kept
        # Guards writes to _entries and _generation: every removal bumps _generation, and an
        # entry is kept only if no removal happened since its CheckSession was sent.
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, float]] = {}  # token -> (user id, renew at)
        self._generation = 0

    def lookup(self, token: str | None) -> int | None:
        """The user id of a token whose lease is in its first half, else None (ask)."""
        entry = self._entries.get(token) if token else None
        if entry is None or time.monotonic() >= entry[1]:
            return None
        return entry[0]

    def generation(self) -> int:
        return self._generation

    def keep(self, token: str, user_id: int, lease: float, sent: float, generation: int) -> None:
        """Keep a ``CheckSession`` answer sent at ``sent`` (monotonic) under a lease of
        ``lease`` seconds (counted from ``sent``: the lease began later at the database)."""
        with self._lock:
            if lease > 0 and self.watching and generation == self._generation:
                self._entries[token] = (user_id, sent + lease / 2)
            else:
                self._entries.pop(token, None)

    def drop(self, tokens: list[str]) -> None:
        if not tokens:
            return
        with self._lock:
            self._generation += 1
            for token in tokens:
                self._entries.pop(token, None)

    def forget_all(self) -> None:
        with self._lock:
            self._generation += 1
            self.watching = False
            self._entries.clear()

    def prune(self) -> None:
        """Drop entries whose first half has passed (bounded memory)."""
        now = time.monotonic()
        with self._lock:
            for token in [t for t, (_, renew) in self._entries.items() if renew <= now]:
                del self._entries[token]

    def watch_forever(self, watch) -> None:
        """Forever: ``watch(holder, epoch, seen, wait)`` (a ``WatchSessions``), drop the
        tokens it names, confirm them with the next one; forget every lease when it fails
        or the database restarted."""
        epoch, seen = "", 0
        while True:
            try:
                reply = watch(self.holder, epoch, seen, WATCH_WAIT)
            except ApiError as error:
                if self.watching:
                    log.info("session leases off until the customer database answers: %s",
                             error.code)
                self.forget_all()
                epoch, seen = "", 0
                time.sleep(WATCH_WAIT)
                continue
            if reply["epoch"] != epoch:
                self.forget_all()
            self.drop(reply["tokens"])
            epoch, seen = reply["epoch"], reply["upto"]
            self.watching = True
            self.prune()
