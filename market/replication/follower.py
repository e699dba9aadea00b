"""A frontend's side of a change feed (``market.replication.feed``): a copy of one database's
followed data, kept current by one ``Follow`` long poll, answering reads while its lease holds.

``Follower.follow_forever`` runs on a thread of its own: it polls, applies each answer (a
snapshot page, or the changes since the last poll) to its ``Copy``, and confirms it with the
next poll. The copy is in use (``fresh``) until ``length`` seconds after the latest poll
whose changes it applied was *sent*, so never after the database stopped waiting for it.
When a poll fails, the copy goes out of use at once and the follower starts over with a
snapshot (logged at INFO, both ways: the link's own ``Health`` says WARNING when the database
stops answering).
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Callable, Protocol, TypeVar

from market.config import LEASE, LONG_POLL_WAIT
from protocol import ApiError

log = logging.getLogger(__name__)
T = TypeVar("T")
Poll = Callable[[str, str, int, "int | None", float], dict]


class Copy(Protocol):
    """What a follower keeps: the entries of a snapshot, then each change put over them."""

    def put(self, entries: list[dict]) -> None: ...

    def clear(self) -> None: ...


class Follower:
    """A frontend's copy of one database's followed data (``what`` names it in the log)."""

    def __init__(self, copy: Copy, what: str, length: float = LEASE) -> None:
        self.name = secrets.token_hex(8)
        self.what = what
        self.length = length
        # Guards the copy and _fresh_until: a read holds it for the whole query, so it
        # never sees half a change, nor a copy being rebuilt.
        self._lock = threading.Lock()
        self.copy = copy
        self._fresh_until = 0.0  # time.monotonic() after which the copy may be stale
        self._down_since: float | None = None  # when the latest poll failed (None: it works)

    def read(self, query: Callable[[Any], T], otherwise: Callable[[], T]) -> T:
        """``query(copy)`` while the copy is fresh, else ``otherwise()`` (ask the database)."""
        with self._lock:
            if self.fresh():
                return query(self.copy)
        return otherwise()

    def fresh(self) -> bool:
        """Whether the copy is in use: its lease has not run out."""
        return time.monotonic() < self._fresh_until

    def follow_forever(self, poll: Poll) -> None:
        """Forever: ``poll(name, epoch, seen, after, wait)`` (a ``Follow``) and apply what it
        answers; after a failure, wait and start over with a snapshot."""
        epoch, seen, after = "", 0, None
        while True:
            sent = time.monotonic()
            try:
                reply = poll(self.name, epoch, seen, after, LONG_POLL_WAIT)
            except ApiError as error:
                self._failed(error)
                epoch, seen, after = "", 0, None
                time.sleep(LONG_POLL_WAIT)
                continue
            epoch, seen, after = self._apply(reply, sent)

    def _failed(self, error: ApiError) -> None:
        with self._lock:
            self._fresh_until = 0.0
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.info("the copy of %s is out of use until its follower is answered again (%s)",
                     self.what, error.code)

    def _apply(self, reply: dict, sent: float) -> tuple[str, int, int | None]:
        """Apply one poll's answer; the epoch, seen and ``after`` of the next poll."""
        with self._lock:
            if "snapshot" not in reply:
                self.copy.put(reply["changes"])
                self._fresh_until = sent + self.length
                came_back = self._down_since
                self._down_since = None
            else:
                came_back = None
                if reply["first"]:
                    self._fresh_until = 0.0
                    self.copy.clear()
                self.copy.put(reply["snapshot"])
        if came_back is not None:
            log.info("the copy of %s is in use again (out of use for %.1f s)", self.what,
                     time.monotonic() - came_back)
        if "snapshot" not in reply:
            return reply["epoch"], reply["upto"], None
        # Fresh only once the changes made since the snapshot began are applied too.
        return reply["epoch"], reply["upto"], reply["next"] or None
