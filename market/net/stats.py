"""What a service counts about the requests it serves, cheap enough to leave on.

``RequestStats`` keeps, per op, the outcomes since start (``ok`` or an error
code) and, for the last minute, the outcomes and a latency histogram in a ring
of ``SLOTS`` time slots of ``SLOT_S`` seconds each. Recording a request is one
lock, a few increments and a binary search; the memory is fixed by the number
of ops and outcomes, not by the number of requests. Percentiles are computed
only when asked (``snapshot``), from the histogram: each is the middle of its
bucket, within ``BUCKET_GROWTH`` of the true value.

``rss_bytes`` is the memory the process uses.
"""
from __future__ import annotations

import bisect
import os
import threading
from typing import Any

SLOT_S = 5.0  # seconds per slot of the ring
SLOTS = 12  # so the last minute is the current slot and the 11 before it: 55 to 60 s
BUCKET_GROWTH = 2 ** 0.25  # each latency bucket is this much wider than the one below
# Upper bounds (seconds) of the latency buckets, 10 µs to ~170 s; one more bucket is above.
BOUNDS = [1e-5 * BUCKET_GROWTH ** n for n in range(97)]


class Slot:
    """One ``SLOT_S``-second slice of one op's last minute: outcomes and latencies."""

    def __init__(self) -> None:
        self.number = -1  # which slice of time (monotonic seconds // SLOT_S) it holds
        self.outcomes: dict[str, int] = {}
        self.histogram = [0] * (len(BOUNDS) + 1)

    def start(self, number: int) -> None:
        """Forget the slice held so far and hold slice ``number``."""
        self.number = number
        self.outcomes = {}
        self.histogram = [0] * (len(BOUNDS) + 1)


class OpStats:
    """One op's outcomes since start and its ring of slots."""

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.slots = [Slot() for _ in range(SLOTS)]


class RequestStats:
    """Outcomes and latencies of a service's requests, per op; thread-safe.

    Callers keep the set of op names bounded (the service maps names that are
    not its ops to one name), so memory stays fixed. ``long_polls`` names ops that wait
    for news by design: counted like any, but left out of ``latency_last_60s``.
    """

    def __init__(self, now: float) -> None:
        self.started = now  # time.perf_counter() at the start
        self.long_polls: set[str] = set()
        # Guards ``_ops``: every recorded request is in exactly one op's outcome
        # count since start, and in its slot's outcomes and histogram while the slot is kept.
        self._lock = threading.Lock()
        self._ops: dict[str, OpStats] = {}

    def record(self, op: str, outcome: str, started: float, ended: float) -> None:
        """Count one request of ``op`` that ended in ``outcome`` ("ok" or an error code);
        ``started`` and ``ended`` are its ``time.perf_counter()`` readings."""
        number = int(ended // SLOT_S)
        bucket = bisect.bisect_left(BOUNDS, ended - started)
        with self._lock:
            stats = self._ops.get(op)
            if stats is None:
                stats = self._ops[op] = OpStats()
            stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
            slot = stats.slots[number % SLOTS]
            if slot.number != number:
                slot.start(number)
            slot.outcomes[outcome] = slot.outcomes.get(outcome, 0) + 1
            slot.histogram[bucket] += 1

    def snapshot(self, now: float) -> dict[str, Any]:
        """The figures ``Stats`` reports, as of ``now`` (``time.perf_counter()``).

        ``ops``: per op, each outcome's count since start, and ``p50_ms``/``p99_ms``
        over the window (None without a request in it); ``ops_last_60s``: per op, each
        outcome's count over the window; ``latency_last_60s``: ``p50_ms`` and ``p99_ms``
        of every request in the window, whatever its op but a long poll; ``window_s``: how
        many seconds back the window reaches (up to 60; less in the service's first minute).
        """
        current = int(now // SLOT_S)
        oldest = current - SLOTS + 1
        with self._lock:  # copy, and add up outside the lock
            copied = {name: (dict(stats.outcomes),
                             [(dict(slot.outcomes), slot.histogram[:]) for slot in stats.slots
                              if oldest <= slot.number <= current])
                      for name, stats in self._ops.items()}
        ops: dict[str, dict] = {}
        recent: dict[str, dict] = {}
        every_op = [0] * (len(BOUNDS) + 1)
        for name, (since_start, slots) in copied.items():
            outcomes: dict[str, int] = {}
            histogram = [0] * (len(BOUNDS) + 1)
            for slot_outcomes, slot_histogram in slots:
                for outcome, count in slot_outcomes.items():
                    outcomes[outcome] = outcomes.get(outcome, 0) + count
                histogram = [a + b for a, b in zip(histogram, slot_histogram)]
            ops[name] = {**since_start, "p50_ms": percentile_ms(histogram, 0.50),
                         "p99_ms": percentile_ms(histogram, 0.99)}
            if outcomes:
                recent[name] = outcomes
            if name not in self.long_polls:
                every_op = [a + b for a, b in zip(every_op, histogram)]
        window = min(now - oldest * SLOT_S, now - self.started)
        return {"uptime_s": round(now - self.started, 3), "ops": ops, "ops_last_60s": recent,
                "latency_last_60s": {"p50_ms": percentile_ms(every_op, 0.50),
                                     "p99_ms": percentile_ms(every_op, 0.99)},
                "window_s": round(max(window, 0.0), 3)}


def percentile_ms(histogram: list[int], fraction: float) -> float | None:
    """The latency (ms) below which ``fraction`` of the histogram's requests fall: the
    middle (geometric) of the bucket it falls in; None for an empty histogram."""
    total = sum(histogram)
    if not total:
        return None
    wanted = fraction * total
    seen = 0
    for bucket, count in enumerate(histogram):
        seen += count
        if seen >= wanted:
            break
    if bucket == 0:
        seconds = BOUNDS[0] / 2
    elif bucket == len(BOUNDS):  # above every bound: say the highest
        seconds = BOUNDS[-1]
    else:
        seconds = (BOUNDS[bucket - 1] * BOUNDS[bucket]) ** 0.5
    return round(seconds * 1000, 3)


def rss_bytes() -> int | None:
    """The process's resident memory in bytes (None where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
