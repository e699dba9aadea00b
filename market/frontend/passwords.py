"""Where passwords are hashed: scrypt in the frontends, queued fairly, one hash per core.

Hashing is deliberately slow, so it lives in the frontends, which can be multiplied across
hosts, not in the one customer database, which stores and compares hashes only.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import os
import threading

from market.config import DEFAULT_HASH_COST


class PasswordHasher:
    """scrypt, queued first come, first served, at most one hash per core at once.

    Hashing is deliberately slow, so it lives in the frontends, which can be
    multiplied across hosts, not in the one customer database. The executor's
    queue is FIFO; memory is bounded by the workers (16 MiB each at cost 14),
    not by the number of clients waiting.
    """

    def __init__(self, cost: int = DEFAULT_HASH_COST, workers: int | None = None) -> None:
        self.cost = cost
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, thread_name_prefix="scrypt")
        # Guards ``waiting``: the hashes asked for whose hashing has not started.
        self._lock = threading.Lock()
        self.waiting = 0

    def hash(self, password: str, salt: bytes, cost: int | None = None) -> bytes:
        """The password's hash with ``salt`` at ``cost`` (this hasher's own by default)."""
        with self._lock:
            self.waiting += 1
        return self._pool.submit(self._hash, password, salt, cost or self.cost).result()

    def _hash(self, password: str, salt: bytes, cost: int) -> bytes:
        with self._lock:
            self.waiting -= 1
        return scrypt(password, salt, cost)


def scrypt(password: str, salt: bytes, cost: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2 ** cost, r=8, p=1, dklen=32,
                          maxmem=256 << 20)


def return_big_blocks_to_the_system() -> None:
    """Make glibc give each scrypt's 16 MiB back when the hash is done.

    Otherwise glibc's growing mmap threshold parks one such block in each of
    its per-thread arenas for good. A no-op where the C library has no ``mallopt``.
    """
    m_mmap_threshold = -3
    try:
        ctypes.CDLL(None).mallopt(m_mmap_threshold, 1 << 20)
    except (OSError, AttributeError):
        pass
