"""Durability for a database started with ``--data-dir``: a journal and snapshots.

``Journal`` appends one JSON line per change (group commit: one ``fsync``
covers every line written so far), writes a snapshot of the whole state
every ``snapshot_every`` changes, and on start loads the snapshot and the
records since, cutting off a torn last line and naming any other damage
(``JournalError``, with file and line). ``read_saved`` reads a directory
without changing it (an upgrade reads an older format's files so, see
``market.storage.formats``), and ``Journal.start_over`` makes one state the whole
content of a directory.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from market.config import SNAPSHOT_EVERY
from market.errors import JournalError
from protocol import encode

log = logging.getLogger("market.storage.journal")


JOURNAL_NAME = re.compile(r"journal-(\d+)\.jsonl")
SNAPSHOT_NAME = "snapshot.json"



@dataclass
class Saved:
    """What a data directory holds: the snapshot's state (None without one), its
    generation, and the records of ``journal_path`` since (a torn last line left out)."""

    generation: int = 0
    state: Any = None
    records: list[dict] = field(default_factory=list)
    journal_path: str = ""
    good_bytes: int = 0  # the journal's length without its torn last line


def read_saved(directory: str) -> Saved:
    """Read the snapshot and the journal since from ``directory``, changing nothing.

    A torn last line (a crash mid-write) is left out; any other damage raises
    ``JournalError`` naming the file and line.
    """
    saved = Saved()
    snapshot_path = os.path.join(directory, SNAPSHOT_NAME)
    if os.path.exists(snapshot_path):
        try:
            with open(snapshot_path, "rb") as f:
                snapshot = json.loads(f.read())
            saved.generation, saved.state = int(snapshot["generation"]), snapshot["state"]
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalError(f"{snapshot_path}: corrupt snapshot ({exc})") from None
    saved.journal_path = os.path.join(directory, f"journal-{saved.generation}.jsonl")
    if os.path.exists(saved.journal_path):
        with open(saved.journal_path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    log.warning("%s:%d: ignoring a torn last line", saved.journal_path, number)
                    break
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    raise JournalError(f"{saved.journal_path}:{number}: corrupt record")
                saved.records.append(record)
                saved.good_bytes += len(line)
    return saved


class Journal:
    """An append-only journal of JSON lines with group commit, plus snapshots.

    ``DIR/snapshot.json`` holds ``{"generation": N, "state": ...}``, the whole
    state at one moment, and ``DIR/journal-N.jsonl`` every record since. The
    owner calls ``append`` while holding its own state lock (so records are in
    the order the changes happened) and ``wait`` after releasing it: one
    ``fsync`` covers every record appended so far, so concurrent writers share
    it (group commit).
    """

    def __init__(self, directory: str, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)  # it holds hashes and tokens
        self.directory = directory
        self.snapshot_path = os.path.join(directory, SNAPSHOT_NAME)
        self.snapshot_every = snapshot_every
        self.generation = 0
        self._since_snapshot = 0
        self._appended = 0  # records appended (under the owner's lock)
        self._bytes = 0  # the current journal file's size (under the owner's lock)
        # Under the flush lock: fsyncs so far, when the last ended (time.time()), its length.
        self._fsyncs = 0
        self._last_fsync_at: float | None = None
        self._last_fsync_ms: float | None = None
        # Held while flushing or swapping the file. Invariant: every record
        # numbered <= _durable is on disk (in the journal or a snapshot).
        self._flush_lock = threading.Lock()
        self._durable = 0
        self._file: Any = None

    def _journal_path(self, generation: int) -> str:
        return os.path.join(self.directory, f"journal-{generation}.jsonl")

    def current_path(self) -> str:
        return self._journal_path(self.generation)

    def load(self) -> tuple[Any, list[dict]]:
        """The snapshot's state (or None) and the journal's records since, then open
        the journal for appending (a torn last line cut off first)."""
        saved = read_saved(self.directory)
        self.generation = saved.generation
        self._file = open(saved.journal_path, "ab", opener=_private)
        self._file.truncate(saved.good_bytes)
        self._since_snapshot = len(saved.records)
        self._bytes = saved.good_bytes
        return saved.state, saved.records

    def append(self, record: dict) -> int:
        """Queue one record (call under the owner's lock); returns its number for ``wait``."""
        line = encode(record)
        self._file.write(line)
        self._bytes += len(line)
        self._appended += 1
        self._since_snapshot += 1
        return self._appended

    def wait(self, number: int) -> None:
        """Return once record ``number`` is on disk, fsyncing if no one else has."""
        if self._durable >= number:  # it only grows: no lock needed to see that
            return
        with self._flush_lock:
            if self._durable >= number:
                return
            target = self._appended
            started = time.perf_counter()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._durable = target
            self._fsyncs += 1
            self._last_fsync_at = time.time()
            self._last_fsync_ms = round((time.perf_counter() - started) * 1000, 3)

    def sync(self) -> None:
        """Return once every record appended so far is on disk (at once if it is)."""
        self.wait(self._appended)

    def stats(self) -> dict[str, Any]:
        """For ``Stats``: the journal file's generation and size, records since the last
        snapshot, fsyncs so far, when the last one ended (seconds since 1970) and how
        long it took. Read without locks: each figure is current, together they may be
        a moment apart."""
        return {"generation": self.generation, "bytes": self._bytes,
                "records_since_snapshot": self._since_snapshot, "fsyncs": self._fsyncs,
                "last_fsync_at": self._last_fsync_at, "last_fsync_ms": self._last_fsync_ms}

    def snapshot_due(self) -> bool:
        return self._since_snapshot >= self.snapshot_every

    def snapshot(self, state: Any) -> None:
        """Save ``state`` and start the next, empty journal (call under the owner's lock).

        The snapshot names its journal, so a crash at any point leaves either
        the old snapshot with the old journal or the new one with the new.
        """
        generation = self.generation + 1
        new_file = open(self._journal_path(generation), "wb", opener=_private)
        temporary = self.snapshot_path + ".tmp"
        with open(temporary, "wb", opener=_private) as f:
            f.write(json.dumps({"generation": generation, "state": state},
                               separators=(",", ":")).encode())
            f.flush()
            os.fsync(f.fileno())
        with self._flush_lock:
            os.replace(temporary, self.snapshot_path)
            directory = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            if self._file is not None:
                self._file.close()
            _remove_if_there(self._journal_path(self.generation))
            self._file, self.generation = new_file, generation
            self._durable = self._appended
        self._bytes = 0
        self._since_snapshot = 0

    def start_over(self, generation: int, state: Any) -> None:
        """Make ``state`` the directory's whole content: a snapshot numbered after
        ``generation`` and an empty journal; every other journal file goes. (An upgrade
        writes the converted state so, never appending to a file of another format.)"""
        self.generation = generation
        self.snapshot(state)
        current = os.path.basename(self.current_path())
        for name in os.listdir(self.directory):
            if JOURNAL_NAME.fullmatch(name) and name != current:
                os.remove(os.path.join(self.directory, name))


def _remove_if_there(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _private(path: str, flags: int) -> int:
    """``open`` opener creating files readable by their owner only."""
    return os.open(path, flags, 0o600)
