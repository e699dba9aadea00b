"""A database's change feed: the one lease-and-push core behind every copy a frontend keeps.

Gray and Cheriton's leases, held on a whole data set, with every change pushed to the
holders (Redis's server-assisted client-side caching in its broadcast mode, where one
invalidation path serves every kind of cached data). What a frontend keeps through it:
the catalog (product database), the sellers' ratings and its sessions (customer database:
a session's end is pushed like any change, so a logout is revoked at every frontend the
same way a price change reaches it).

- A database ``publish``es each change of the data it lets frontends follow (the new state
  of one entry, or the end of a session), under its lock. The change is numbered and queued
  for every follower.
- A frontend keeps one ``Follow`` long poll open on each database (``market.replication.
  follower``). A follower unknown to the feed (new, of another run, or one whose lease ran
  out) first gets a snapshot, in pages (``first`` marks the first), then the changes made
  since the snapshot began. Every poll says which changes it has applied (``seen``).
- **Holding.** A follower holds writes (it has a lease) only once its copy is complete and
  confirmed: from the first poll that confirms every change it was sent. Each poll that
  confirms everything it was sent renews the lease for ``length`` seconds from its arrival;
  one that confirms less renews nothing. A lease that ran out is gone: the next poll starts
  a snapshot anew, and the follower holds writes again only once it confirms that one. So
  a follower being snapshotted holds nothing, and one that stops confirming (stopped, cut
  off, or a stranger polling in the open mode) holds a write for at most one lease.
- **Waiting.** A reply that acknowledges change N (``Acknowledged``, returned by a handler
  and waited for by ``Database.propagate``) leaves once every follower holding a lease has
  confirmed N, or its lease ran out (``wait_seen``). So a write is acknowledged only once
  every frontend answering from a copy shows it.
- The frontend uses its copy only until ``length`` seconds after it *sent* the latest poll
  whose answer it applied: before the database stops waiting for it.
- A database restarted on its data directory knows nothing of the copies made from its
  previous run; those go out of use within ``length`` of the restart, so for that long every
  acknowledgement waits them out (``restarted``).
- At most ``MAX_FOLLOWERS`` followers at once; a new one past that is ``unavailable``.

Leases and copies live in memory only.
"""
from __future__ import annotations

import heapq
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from market.config import FOLLOWER_FORGOTTEN, LEASE, MAX_FOLLOWERS
from protocol import ApiError, RawResult, encode_value


class Acknowledged(NamedTuple):
    """A handler's reply and the latest change it acknowledges (0: none): the reply leaves
    once every copy shows that change (``ChangeFeed.wait_seen``). Every write's handler
    returns one, so that what its reply waits for is said where the change is made."""

    result: Any
    change: int = 0


@dataclass
class _Lease:
    """One follower, as the database sees it."""

    alive: float  # time.monotonic() until which changes are queued for it (any poll renews)
    sent: int  # the ``upto`` of the latest answer: what its next poll must confirm
    seen: int  # every change numbered up to this one is applied there
    holds: float = 0.0  # time.monotonic() until which writes wait for it (0: never yet)
    pending: list[tuple[int, bytes]] = field(default_factory=list)  # (number, JSON) unconfirmed
    complete: bool = True  # every change since its snapshot began is queued


class ChangeFeed:
    """A database's changes to its followed data, and its followers' leases. Thread-safe;
    call ``publish`` under the database's lock, ``wait_seen`` and ``poll`` without it."""

    def __init__(self, length: float = LEASE) -> None:
        self.length = length
        self.epoch = secrets.token_hex(8)  # this run's: numbers of another run mean nothing
        # Guards everything below. Invariants: a complete follower's pending changes are
        # exactly those published since its snapshot began and not yet confirmed, in order;
        # a follower holds writes only while alive (holds <= alive).
        self._lock = threading.Lock()
        self._news = threading.Condition(self._lock)  # notified when a change is queued
        self._leases: dict[str, _Lease] = {}
        self.published = 0  # number of the latest change
        self._sent = {"polls": 0, "changes": 0}  # answered with changes, and how many, in all
        self._earlier_run_ends = 0.0  # time.monotonic() by which a previous run's copies end
        # The replies waiting for changes to be confirmed: (number, tiebreak, waiter), each
        # waiter a lock its reply holds, released once every holder has confirmed the
        # number (one wakes, not all; a bare lock, as an Event costs a Condition).
        self._waiting: list[tuple[int, int, threading.Lock]] = []

    def restarted(self) -> None:
        """The data was loaded from disk: wait out the copies made from the previous run."""
        with self._lock:
            self._earlier_run_ends = time.monotonic() + self.length

    def publish(self, entry: dict) -> int:
        """Number the change ``entry`` and queue it for every live follower (encoded once, for
        all; not at all while none follows, as while a journal is replayed at start); return
        its number. Followers are added only under the database's lock, which the caller
        holds: with none now, none appears before this returns."""
        encoded = encode_value(entry) if self._leases else b""
        with self._lock:
            self.published += 1
            if self._leases:
                now = time.monotonic()
                for lease in self._leases.values():
                    if lease.complete and lease.alive > now:
                        lease.pending.append((self.published, encoded))
                    else:
                        lease.complete = False
                        lease.pending.clear()
                self._news.notify_all()
            return self.published

    def holds(self, follower: str) -> bool:
        """Whether ``follower`` holds a lease now (its copy is complete, confirmed, current)."""
        with self._lock:
            lease = self._leases.get(follower)
            return lease is not None and lease.holds > time.monotonic()

    def wait_seen(self, number: int) -> None:
        """Return once every follower holding a lease has applied the changes up to
        ``number``, or its lease ran out (and no sooner than an earlier run's copies end)."""
        waiter = None
        while True:
            with self._lock:
                now = time.monotonic()
                ends = [lease.holds for lease in self._leases.values()
                        if lease.seen < number and lease.holds > now]
                if now < self._earlier_run_ends:
                    ends.append(self._earlier_run_ends)
                if not ends:
                    return
                if waiter is None:
                    waiter = threading.Lock()
                    waiter.acquire()
                    heapq.heappush(self._waiting, (number, id(waiter), waiter))
            if waiter.acquire(timeout=max(ends) - now):
                waiter = None  # released (and taken off the heap): woken, look again

    def poll(self, follower: str, epoch: str, seen: int, after: int | None, wait: float,
             snapshot: Callable[[int], tuple[list[dict], int | None]],
             lock: threading.Lock) -> dict | RawResult:
        """One ``Follow`` of ``follower``: confirm the changes up to ``seen``; then the changes
        queued for it, waiting up to ``wait`` seconds for one (``{"epoch", "upto",
        "changes"}``), or a snapshot page: the entries after id ``after`` (``snapshot(after)``
        under ``lock``, the database's) as ``{"epoch", "upto", "snapshot", "next", "first"}``.
        """
        with self._lock:
            lease = self._leases.get(follower)
            now = time.monotonic()
            known = (lease is not None and epoch == self.epoch and lease.complete
                     and lease.alive > now and not 0 < lease.holds <= now)
            if known and after is None:
                return self._changes(lease, seen, wait)
        return self._snapshot_page(follower, not known, after or 0, snapshot, lock)

    def _changes(self, lease: _Lease, seen: int, wait: float) -> RawResult:
        """A known follower's poll for changes (hold _lock)."""
        now = time.monotonic()
        lease.alive = now + self.length
        if seen > lease.seen:
            lease.seen = min(seen, lease.sent)
            lease.pending = [p for p in lease.pending if p[0] > lease.seen]
        if seen >= lease.sent:  # it confirms everything it was sent: it holds writes
            lease.holds = lease.alive
        self._wake_confirmed()
        self._wait_for_news(lease, wait)
        if lease.pending:
            self._sent["polls"] += 1
            self._sent["changes"] += len(lease.pending)
        lease.sent = self.published
        return RawResult(b'{"epoch":"%s","upto":%d,"changes":[%s]}' % (
            self.epoch.encode(), self.published,
            b",".join([change for _, change in lease.pending])))

    def _snapshot_page(self, follower: str, first: bool, after: int,
                       snapshot: Callable[[int], tuple[list[dict], int | None]],
                       lock: threading.Lock) -> dict:
        """A page of a snapshot; the first makes the follower's lease anew (not holding)."""
        with lock:
            entries, next_after = snapshot(0 if first else after)
            with self._lock:
                alive = time.monotonic() + self.length
                if first:
                    self._make_room()
                    self._leases[follower] = _Lease(alive, self.published, self.published)
                    self._wake_confirmed()  # a lease it replaced may have held replies
                lease = self._leases[follower]
                lease.alive = alive
                return {"epoch": self.epoch, "upto": lease.sent, "snapshot": entries,
                        "next": next_after, "first": first}

    def _wake_confirmed(self) -> None:
        """Wake the replies whose changes every holder has confirmed (hold _lock)."""
        now = time.monotonic()
        confirmed = min([lease.seen for lease in self._leases.values() if lease.holds > now],
                        default=self.published)
        while self._waiting and self._waiting[0][0] <= confirmed:
            heapq.heappop(self._waiting)[2].release()

    def _wait_for_news(self, lease: _Lease, wait: float) -> None:
        """Wait up to ``wait`` seconds for a change queued for ``lease`` (hold _lock). No
        lingering for more: under load the changes made while a poll and its confirmation
        travel wait for the next poll, so each carries many of them."""
        ends = time.monotonic() + wait
        while not lease.pending and (left := ends - time.monotonic()) > 0:
            self._news.wait(left)

    def _make_room(self) -> None:
        """Drop followers gone long, then, if at ``MAX_FOLLOWERS``, any not alive; refuse a
        new one if none could go (hold _lock)."""
        now = time.monotonic()
        for name in [name for name, lease in self._leases.items()
                     if now - lease.alive > FOLLOWER_FORGOTTEN]:
            del self._leases[name]
        if len(self._leases) >= MAX_FOLLOWERS:
            for name in [name for name, lease in self._leases.items() if lease.alive <= now]:
                del self._leases[name]
        if len(self._leases) >= MAX_FOLLOWERS:
            raise ApiError("unavailable", f"This database has {MAX_FOLLOWERS} followers, the "
                                          "most it keeps; try again later.")

    def stats(self) -> dict:
        now = time.monotonic()
        with self._lock:
            return {"published": self.published,
                    "followers": sum(lease.alive > now for lease in self._leases.values()),
                    "holding": sum(lease.holds > now for lease in self._leases.values()),
                    "polls_with_changes": self._sent["polls"],
                    "changes_sent": self._sent["changes"]}
