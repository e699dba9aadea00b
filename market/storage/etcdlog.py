"""A database's journal kept in etcd (``--etcd``): the replicated log every process of one
database reads, and only the active one appends to.

Keys, under ``/market/<database>/`` (``<database>`` is ``product_db`` or ``customer_db``):

    format               ``{"format", "database"}``, as a data directory's marker
    leader               the active process (``{"name", "address"}``), held by its lease
    log/<seq>            one batch of journal records (a JSON list), ``seq`` from 1, rising
    snapshot             ``{"generation", "upto", "chunks"}``: the state after batch ``upto``
    chunks/<gen>/<n>     that state's JSON, cut in chunks under etcd's request size

Appending (``EtcdLog``): ``append`` queues a record (under the database's lock, so records
keep the order of the changes) and ``sync`` returns once every record queued so far is in
etcd: one transaction carries every batch queued meanwhile (group commit), and commits only
if this process still holds the ``leader`` key and the next ``log/<seq>`` is free, so a
deposed process can never append (``Deposed``). While other records keep coming (the last
transaction carried more than one), a commit first waits ``ETCD_COMMIT_DELAY`` for more, as
PostgreSQL's ``commit_delay``: fewer, fuller transactions, etcd's cost being per
transaction. A transaction etcd does not answer is sent again while the process still
leads; if it never is, the log is **broken**: it may or may not hold that batch, while the
process's memory holds it, so nothing more is appended and every ``sync`` raises, until the
process forgets its memory (``market.database.replica``: a demotion). Every ``SNAPSHOT_EVERY`` records a
snapshot of the state is cut (at a batch's end) and written in the background; once it is
in, the batches it covers and the older snapshot are deleted and etcd's history before it is
compacted, so etcd holds one snapshot and the batches since (its own database file still
needs an occasional ``etcdctl defrag`` to shrink on disk).

Reading (``load``): the snapshot and the batches since, as a data directory is loaded.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from market.config import (
    ETCD_CHUNK,
    ETCD_COMMIT_DELAY,
    ETCD_RETRY_PAUSE,
    SNAPSHOT_EVERY,
)
from market.errors import Deposed, EtcdError, JournalError
from market.storage.etcd import Etcd, absent, delete, holds, prefix_end, put, unb64
from market.storage.formats import CURRENT

log = logging.getLogger(__name__)


def namespace(database: str) -> bytes:
    return f"/market/{database}/".encode()


def log_key(space: bytes, seq: int) -> bytes:
    return space + b"log/%020d" % seq


def seq_of(space: bytes, key: bytes) -> int:
    return int(key[len(space) + 4:])


@dataclass
class Batch:
    """Records queued for one ``log/<seq>``; a snapshot cut at its end (the state after it)."""

    records: list[dict] = field(default_factory=list)
    snapshot: Any = None


@dataclass
class Loaded:
    """What ``load`` read: the snapshot's state (None without one), the records since, the
    last batch's seq, and etcd's revision when read (a watch goes on from the next)."""

    state: Any
    records: list[dict]
    seq: int
    revision: int


def load(etcd: Etcd, database: str) -> Loaded:
    """The database's snapshot and the records of every batch after it (raises
    ``JournalError`` for a format this version does not know)."""
    space = namespace(database)
    marker, revision = etcd.get(space + b"format")
    if marker is None:
        etcd.txn([absent(space + b"format")], [put(space + b"format", json.dumps(
            {"format": CURRENT, "database": database}).encode())])
    elif json.loads(marker).get("format") != CURRENT:
        raise JournalError(f"etcd holds the {database}'s data in format "
                           f"{json.loads(marker).get('format')}; this version reads {CURRENT}")
    pointer, revision = etcd.get(space + b"snapshot")
    state, upto = None, 0
    if pointer is not None:
        snapshot = json.loads(pointer)
        chunks_at = space + b"chunks/%s/" % snapshot["generation"].encode()
        kvs, _, _ = etcd.range(chunks_at, prefix_end(chunks_at), revision=revision)
        if len(kvs) != snapshot["chunks"]:
            raise JournalError(f"etcd's snapshot of the {database} has {len(kvs)} of its "
                               f"{snapshot['chunks']} chunks")
        state = json.loads(b"".join(unb64(kv["value"]) for kv in kvs))
        upto = snapshot["upto"]
    records, seq = [], upto
    while True:
        kvs, _, more = etcd.range(log_key(space, seq + 1), prefix_end(space + b"log/"),
                                  limit=1000, revision=revision)
        for kv in kvs:
            found = seq_of(space, unb64(kv["key"]))
            if found != seq + 1:
                raise JournalError(f"etcd's log of the {database} misses batch {seq + 1}")
            records += json.loads(unb64(kv["value"]))
            seq = found
        if not more:
            return Loaded(state, records, seq, revision)


class EtcdLog:
    """The active process's appends to its database's log in etcd (see the module doc).

    ``claim`` is the leader key's value this process holds, ``seq`` the last batch in etcd.
    ``snapshot_state`` makes the state to snapshot (called under the database's lock);
    ``leading()`` says whether this process is still sure of its leadership (a transaction
    etcd did not answer is sent again while it is).
    """

    def __init__(self, etcd: Etcd, database: str, claim: bytes, seq: int,
                 snapshot_state: Callable[[], Any], leading: Callable[[], bool],
                 snapshot_every: int = SNAPSHOT_EVERY,
                 commit_delay: float = ETCD_COMMIT_DELAY) -> None:
        self.etcd = etcd
        self.database = database
        self.space = namespace(database)
        self.claim = claim
        self.snapshot_state = snapshot_state
        self.leading = leading
        self.snapshot_every = snapshot_every
        self.commit_delay = commit_delay
        # Guards the queue: _batches (the last one open), _queued (records queued in all),
        # _since_snapshot. Records are queued in the order of the changes (the caller holds
        # the database's lock).
        self._lock = threading.Lock()
        self._batches = [Batch()]
        self._queued = 0
        self._since_snapshot = 0
        # Held while committing. Invariant: every record numbered <= _committed is in etcd,
        # in batches up to _seq, and none after them unless _broken (then the log is unsure
        # of a batch and takes no more: see the module doc).
        self._commit_lock = threading.Lock()
        self._committed = 0
        self._broken: EtcdError | None = None
        self._streaming = False  # the last transaction carried more than one record
        self._seq = seq
        self._commits = 0
        self._last_commit_ms: float | None = None
        self._snapshots: list[tuple[int, Any]] = []  # (seq, state) to write, in order
        self._snapshot_ready = threading.Condition()
        threading.Thread(target=self._write_snapshots, name="etcd-snapshots",
                         daemon=True).start()

    def append(self, record: dict) -> int:
        """Queue one record (hold the database's lock); its number for ``wait``."""
        with self._lock:
            self._batches[-1].records.append(record)
            self._queued += 1
            return self._queued

    def cut_snapshot_if_due(self) -> None:
        """Every ``snapshot_every`` records, cut the open batch here and keep the state after
        it to snapshot (call after each ``append``, holding the database's lock)."""
        with self._lock:
            self._since_snapshot += 1
            if self._since_snapshot < self.snapshot_every:
                return
            self._since_snapshot = 0
            self._batches[-1].snapshot = self.snapshot_state()
            self._batches.append(Batch())

    def sync(self) -> None:
        """Return once every record queued so far is in etcd; ``Deposed`` if this process no
        longer holds the leadership (nothing more is appended then), ``EtcdError`` if etcd
        did not answer while it did (the log is broken then: see the module doc)."""
        self.wait(self._queued)

    def wait(self, number: int) -> None:
        if self._committed >= number:  # it only grows: no lock needed to see that
            return
        with self._commit_lock:
            if self._committed >= number:
                return
            if self._broken is not None:
                raise self._broken
            if self._streaming:
                time.sleep(self.commit_delay)
            with self._lock:
                batches = [batch for batch in self._batches if batch.records]
                queued, self._batches = self._queued, [Batch()]
            started = time.perf_counter()
            first = self._commit(batches)
            self._streaming = queued - self._committed > 1
            self._committed = queued
            self._commits += 1
            self._last_commit_ms = round((time.perf_counter() - started) * 1000, 3)
            cut = [(first + n, batch.snapshot) for n, batch in enumerate(batches)
                   if batch.snapshot is not None]
        if cut:
            with self._snapshot_ready:
                self._snapshots += cut
                self._snapshot_ready.notify()

    def _commit(self, batches: list[Batch]) -> int:
        """Append ``batches`` after ``_seq`` in one transaction (hold ``_commit_lock``),
        sent again while etcd does not answer and this process leads, else the log breaks;
        the first batch's seq."""
        first = self._seq + 1
        values = [json.dumps(batch.records).encode() for batch in batches]
        while True:
            try:
                ok, _ = self.etcd.txn(
                    [holds(self.space + b"leader", self.claim),
                     absent(log_key(self.space, first))],
                    [put(log_key(self.space, first + n), value)
                     for n, value in enumerate(values)])
                if not ok and not self._committed_before(first, values[0]):
                    raise Deposed(f"the {self.database}'s leadership in etcd is another "
                                  "process's now")
                break
            except Deposed as error:
                self._broken = error
                raise
            except EtcdError as error:
                if not self.leading():
                    self._broken = error
                    raise
                time.sleep(ETCD_RETRY_PAUSE)
        self._seq += len(batches)
        return first

    def _committed_before(self, first: int, value: bytes) -> bool:
        """Whether a transaction that failed did so because an earlier try of it committed
        (a member took it and went before its answer came; the client then asked another):
        this process still leads, and its first batch is there."""
        leader, _ = self.etcd.get(self.space + b"leader")
        there, _ = self.etcd.get(log_key(self.space, first))
        return leader == self.claim and there == value

    @property
    def seq(self) -> int:
        return self._seq

    def stats(self) -> dict[str, Any]:
        return {"seq": self._seq, "commits": self._commits,
                "last_commit_ms": self._last_commit_ms}

    def _write_snapshots(self) -> None:
        """Forever: write each snapshot cut (the latest, if several wait), then drop what it
        covers. A failure leaves the log as it was (the next snapshot covers more)."""
        while True:
            with self._snapshot_ready:
                while not self._snapshots:
                    self._snapshot_ready.wait()
                seq, state = self._snapshots[-1]
                self._snapshots.clear()
            try:
                self._write_snapshot(seq, state)
            except EtcdError as error:
                log.warning("could not write the %s's snapshot to etcd: %s", self.database,
                            error)

    def _write_snapshot(self, seq: int, state: Any) -> None:
        generation = secrets.token_hex(8)
        data = json.dumps(state, separators=(",", ":")).encode()
        chunks = [data[i:i + ETCD_CHUNK] for i in range(0, len(data), ETCD_CHUNK)] or [b""]
        at = self.space + b"chunks/%s/" % generation.encode()
        for number, chunk in enumerate(chunks):
            self.etcd.txn([holds(self.space + b"leader", self.claim)],
                          [put(at + b"%06d" % number, chunk)])
        old, _ = self.etcd.get(self.space + b"snapshot")
        drop = [delete(self.space + b"log/", log_key(self.space, seq + 1))]
        if old is not None:
            before = self.space + b"chunks/%s/" % json.loads(old)["generation"].encode()
            drop.append(delete(before, prefix_end(before)))
        ok, revision = self.etcd.txn(
            [holds(self.space + b"leader", self.claim)],
            [put(self.space + b"snapshot", json.dumps(
                {"generation": generation, "upto": seq, "chunks": len(chunks)}).encode()),
             *drop])
        if ok:
            self.etcd.compact(revision)
            log.info("%s: a snapshot after batch %d is in etcd (%d bytes)", self.database,
                     seq, len(data))
