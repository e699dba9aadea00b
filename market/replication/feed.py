"""Change feeds: a frontend answers reads from its own copy of a database's data, and no
read there shows data older than a write acknowledged to any client.

Gray and Cheriton's leases, held on a whole data set, with every change pushed to the
holders (the model of Redis's server-assisted client-side caching, in its broadcast mode):

- A database ``publish``es each change of the data it lets frontends follow (the new state
  of one entry: an item, a seller's rating), under its lock. The change is numbered and
  queued for every follower whose lease is live.
- A frontend keeps one ``Follow`` long poll open on each database (``Follower.follow_forever``).
  Each poll confirms the changes applied so far (``seen``) and renews the follower's lease
  for ``length`` seconds from its arrival; it is answered once changes are queued for it,
  or after ``wait`` seconds.
- Every reply that acknowledges a change (``Database.wait_for_copies``: its request
  published it, or it gives a keyed write's earlier outcome again) waits
  (``ChangeFeed.wait_seen``) until each follower with a live lease has confirmed that
  change and every one before it, or that lease has run out. So a write is acknowledged
  only once every frontend answering from a copy shows it.
- The frontend uses its copy only until ``length`` seconds after it *sent* the latest poll
  whose answer it applied. It sent it before the database received it, so the copy goes
  out of use no later than the database stops waiting for it: a frontend that stops
  polling (stopped, cut off) costs the database's writes at most ``length`` seconds, and
  asks the database itself meanwhile.
- A follower the database does not know (new, of another run, or one whose lease ran out
  while changes were published) first gets a snapshot, in pages (``first`` marks the first),
  then the changes made since the snapshot began. Each change is an entry's whole state
  (what may change of it), so one applied over a newer page leaves the entry right once the
  changes are through.
- A database restarted on its data directory knows nothing of the copies made from its
  previous run; those go out of use within ``length`` of the restart, so for that long
  every acknowledgement waits them out (``restarted``).

Leases and copies live in memory only.
"""
from __future__ import annotations

import heapq
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TypeVar

from market.config import FEED_FOLLOWER_FORGOTTEN, FEED_LEASE, FEED_WAIT
from protocol import ApiError, RawResult, encode_value

log = logging.getLogger("market.replication.feed")
T = TypeVar("T")


@dataclass
class _Lease:
    """One follower, as the database sees it."""

    ends: float  # time.monotonic() its lease runs out
    seen: int  # every change numbered up to this one is applied there
    pending: list[tuple[int, bytes]] = field(default_factory=list)  # (number, JSON) unconfirmed
    complete: bool = True  # false once a change was published while its lease was out


class ChangeFeed:
    """A database's changes to its followed data, and its followers' leases. Thread-safe;
    call ``publish`` under the database's lock, ``wait_seen`` and ``poll`` without it."""

    def __init__(self, length: float = FEED_LEASE) -> None:
        self.length = length
        self.epoch = secrets.token_hex(8)  # this run's: numbers of another run mean nothing
        # Guards everything below. Invariant: a complete follower's pending changes are
        # exactly those published since its snapshot began and not yet confirmed, in order.
        self._lock = threading.Lock()
        self._news = threading.Condition(self._lock)  # notified when a change is queued
        self._leases: dict[str, _Lease] = {}
        self.published = 0  # number of the latest change
        self._sent = {"polls": 0, "changes": 0}  # answered with changes, and how many, in all
        self._earlier_run_ends = 0.0  # time.monotonic() by which a previous run's copies end
        # The replies waiting for changes to be confirmed: (number, tiebreak, waiter), each
        # waiter a lock its reply holds, released once every live follower has confirmed
        # the number (one wakes, not all; a bare lock, as an Event costs a Condition).
        self._waiting: list[tuple[int, int, threading.Lock]] = []
        # Per thread: the latest change the reply it is computing acknowledges (its own
        # publish, or ``acknowledges``), until ``take_acknowledged``.
        self._acknowledged = threading.local()

    def restarted(self) -> None:
        """The data was loaded from disk: wait out the copies made from the previous run."""
        with self._lock:
            self._earlier_run_ends = time.monotonic() + self.length

    def publish(self, entry: dict) -> None:
        """Number the new state of one entry and queue it for every live follower (encoded
        once, for all of them; not at all while none follows, as while a journal is
        replayed at start). Followers are only added or forgotten under the database's
        lock, which the caller holds: with none now, none appears before this returns."""
        encoded = encode_value(entry) if self._leases else b""
        with self._lock:
            self.published += 1
            self._acknowledged.number = self.published
            if not self._leases:
                return
            now = time.monotonic()
            for lease in self._leases.values():
                if lease.ends > now and lease.complete:
                    lease.pending.append((self.published, encoded))
                else:
                    lease.complete = False
                    lease.pending.clear()
            self._news.notify_all()

    def acknowledges(self, number: int) -> None:
        """The reply this thread is computing acknowledges the changes up to ``number``
        (a keyed write's earlier outcome, given again)."""
        self._acknowledged.number = number

    def take_acknowledged(self) -> int | None:
        """The latest change this thread published or ``acknowledges`` since the last call
        (None: none), for its reply to ``wait_seen``."""
        number = getattr(self._acknowledged, "number", None)
        self._acknowledged.number = None
        return number

    def wait_seen(self, number: int) -> None:
        """Return once every follower with a live lease has applied the changes up to
        ``number``, or its lease ran out (and no sooner than an earlier run's copies end)."""
        waiter = None
        while True:
            with self._lock:
                now = time.monotonic()
                ends = [lease.ends for lease in self._leases.values()
                        if lease.seen < number and lease.ends > now and lease.complete]
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

    def _wake_confirmed(self) -> None:
        """Wake the replies whose changes every live follower has confirmed (hold _lock)."""
        now = time.monotonic()
        confirmed = min([lease.seen for lease in self._leases.values()
                         if lease.ends > now and lease.complete], default=self.published)
        while self._waiting and self._waiting[0][0] <= confirmed:
            heapq.heappop(self._waiting)[2].release()

    def poll(self, follower: str, epoch: str, seen: int, after: int | None, wait: float,
             snapshot: Callable[[int], tuple[list[dict], int | None]],
             lock: threading.Lock) -> dict | RawResult:
        """One ``Follow`` of ``follower``: confirm the changes up to ``seen`` and renew its
        lease; then the changes queued for it, waiting up to ``wait`` seconds for one
        (``{"epoch", "upto", "changes"}``), or a snapshot page: the entries after id
        ``after`` (``snapshot(after)`` under ``lock``, the database's) as
        ``{"epoch", "upto", "snapshot", "next", "first"}``.
        """
        with self._lock:
            lease = self._leases.get(follower)
            known = lease is not None and lease.complete and epoch == self.epoch
            if known:
                lease.ends = time.monotonic() + self.length
                if seen > lease.seen:
                    lease.seen = min(seen, self.published)
                    lease.pending = [p for p in lease.pending if p[0] > lease.seen]
                    self._wake_confirmed()
                if after is None:
                    self._wait_for_news(lease, wait)
                    if lease.pending:
                        self._sent["polls"] += 1
                        self._sent["changes"] += len(lease.pending)
                    return RawResult(b'{"epoch":"%s","upto":%d,"changes":[%s]}' % (
                        self.epoch.encode(), self.published,
                        b",".join([change for _, change in lease.pending])))
        first = not known  # else a later page of the snapshot begun
        with lock:
            entries, next_after = snapshot(0 if first else after)
            with self._lock:
                if first:
                    self._forget_gone()
                    self._leases[follower] = _Lease(time.monotonic() + self.length,
                                                    self.published)
                return {"epoch": self.epoch, "upto": self._leases[follower].seen,
                        "snapshot": entries, "next": next_after, "first": first}

    def _wait_for_news(self, lease: _Lease, wait: float) -> None:
        """Wait up to ``wait`` seconds for a change queued for ``lease`` (hold _lock). No
        lingering for more: under load the changes made while a poll and its confirmation
        travel wait for the next poll, so each carries many of them."""
        ends = time.monotonic() + wait
        while not lease.pending and (left := ends - time.monotonic()) > 0:
            self._news.wait(left)

    def _forget_gone(self) -> None:
        """Drop the followers whose leases ran out long ago (hold _lock)."""
        now = time.monotonic()
        for name in [name for name, lease in self._leases.items()
                     if now - lease.ends > FEED_FOLLOWER_FORGOTTEN]:
            del self._leases[name]

    def stats(self) -> dict:
        now = time.monotonic()
        with self._lock:
            return {"published": self.published,
                    "followers": sum(lease.ends > now for lease in self._leases.values()),
                    "polls_with_changes": self._sent["polls"],
                    "changes_sent": self._sent["changes"]}


class Copy(Protocol):
    """What a follower keeps: the entries of a snapshot, then each change put over them."""

    def put(self, entries: list[dict]) -> None: ...

    def clear(self) -> None: ...


class Follower:
    """A frontend's copy of one database's followed data, kept current by one long poll
    (``follow_forever``, on a thread of its own); ``read`` answers from it while fresh."""

    def __init__(self, copy: Copy, length: float = FEED_LEASE) -> None:
        self.name = secrets.token_hex(8)
        self.length = length
        # Guards the copy and _fresh_until: a read holds it for the whole query, so it
        # never sees half a change, nor a copy being rebuilt.
        self._lock = threading.Lock()
        self._copy = copy
        self._fresh_until = 0.0  # time.monotonic() after which the copy may be stale

    def read(self, query: Callable[[Any], T], otherwise: Callable[[], T]) -> T:
        """``query(copy)`` while the copy is fresh, else ``otherwise()`` (ask the database)."""
        with self._lock:
            if self.fresh():
                return query(self._copy)
        return otherwise()

    def fresh(self) -> bool:
        """Whether the copy is in use: its lease has not run out."""
        return time.monotonic() < self._fresh_until

    def follow_forever(self, poll: Callable[[str, str, int, int | None, float], dict]) -> None:
        """Forever: ``poll(name, epoch, seen, after, wait)`` (a ``Follow``) and apply what it
        answers; after a failure, wait and start over with a snapshot."""
        epoch, seen, after = "", 0, None
        while True:
            sent = time.monotonic()
            try:
                reply = poll(self.name, epoch, seen, after, FEED_WAIT)
            except ApiError as error:
                if epoch:
                    log.info("copy out of use until the database answers: %s", error.code)
                with self._lock:
                    self._fresh_until = 0.0
                epoch, seen, after = "", 0, None
                time.sleep(FEED_WAIT)
                continue
            epoch, seen, after = self._apply(reply, sent)

    def _apply(self, reply: dict, sent: float) -> tuple[str, int, int | None]:
        """Apply one poll's answer; the epoch, seen and ``after`` of the next poll."""
        with self._lock:
            if "snapshot" not in reply:
                self._copy.put(reply["changes"])
                self._fresh_until = sent + self.length
                return reply["epoch"], reply["upto"], None
            if reply["first"]:
                self._fresh_until = 0.0
                self._copy.clear()
            self._copy.put(reply["snapshot"])
            # Fresh only once the changes made since the snapshot began are applied too.
            return reply["epoch"], reply["upto"], reply["next"] or None
