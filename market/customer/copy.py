"""What a frontend keeps of the customer database (a ``Copy`` its follower keeps current,
``market.replication.follower``): every seller's rating, and the sessions it may answer for.

The customer database's feed carries two kinds of entries: a seller's rating as it now is
(``{"seller_id", ...}``), and the end of a session (``{"ended": token}``). A session enters
the copy only from a ``CheckSession`` answer that allows it (``cache_s``, given to a frontend
holding a lease), and leaves when its time is up or its end is pushed.
"""
from __future__ import annotations

import threading
import time

from market.customer.ratings import no_seller
from protocol import RawResult, encode_value


class RatingsCopy:
    """Every seller's rating, each kept as its reply JSON."""

    def __init__(self) -> None:
        self._by_seller: dict[int, bytes] = {}

    def put(self, entry: dict) -> None:
        self._by_seller[entry["seller_id"]] = encode_value(entry)

    def clear(self) -> None:
        self._by_seller.clear()

    def rating(self, seller_id: int) -> RawResult:
        found = self._by_seller.get(seller_id)
        if found is None:
            raise no_seller(seller_id)
        return RawResult(found)


class SessionsCopy:
    """Sessions this frontend answers the checks of itself: token -> user id, until a time.

    ``lookup`` reads without the lock: an entry is one tuple, replaced or removed whole. The
    follower removes the tokens it is told of before it confirms them, so a lookup that still
    finds one runs before the end is acknowledged.
    """

    def __init__(self) -> None:
        # Guards writes to _entries and _generation: every removal bumps _generation, and an
        # entry is kept only if no removal happened since its CheckSession was sent.
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, float]] = {}  # token -> (user id, until)
        self._generation = 0
        self._pruned = 0.0  # time.monotonic() of the latest prune

    def lookup(self, token: str | None) -> int | None:
        """The user id of a token this copy may answer for now, else None (ask)."""
        entry = self._entries.get(token) if token else None
        if entry is None or time.monotonic() >= entry[1]:
            return None
        return entry[0]

    def generation(self) -> int:
        return self._generation

    def keep(self, token: str, user_id: int, cache_s: float, sent: float,
             generation: int) -> None:
        """Keep a ``CheckSession`` answer sent at ``sent`` (monotonic) for ``cache_s`` seconds
        from then, unless a session ended since it was sent (``generation``)."""
        with self._lock:
            if cache_s > 0 and generation == self._generation:
                self._entries[token] = (user_id, sent + cache_s)
            else:
                self._entries.pop(token, None)

    def end(self, token: str) -> None:
        with self._lock:
            self._generation += 1
            self._entries.pop(token, None)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries = {}

    def prune(self) -> None:
        """Drop entries whose time is up (bounded memory), at most once a second."""
        now = time.monotonic()
        if now - self._pruned < 1.0:
            return
        self._pruned = now
        with self._lock:
            for token in [t for t, (_, until) in self._entries.items() if until <= now]:
                del self._entries[token]


class AccountsCopy:
    """The customer database's followed data: ratings and sessions (a follower's ``Copy``)."""

    def __init__(self) -> None:
        self.ratings = RatingsCopy()
        self.sessions = SessionsCopy()

    def put(self, entries: list[dict]) -> None:
        for entry in entries:
            if "ended" in entry:
                self.sessions.end(entry["ended"])
            else:
                self.ratings.put(entry)
        self.sessions.prune()

    def clear(self) -> None:
        self.ratings.clear()
        self.sessions.clear()
