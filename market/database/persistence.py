"""A database's data directory: what is loaded at start, and every change journaled after.

``DataDirectory.open`` loads a directory (``--data-dir``) into a database: the snapshot,
then each journal record since, applied by the same appliers as live changes. A directory
of an older format (``market.storage.formats``) is upgraded in place: its files are copied
to ``backup-format-N/``, their content converted and loaded, and the state written anew in
the current format. A newer format is refused. From then on ``record`` journals each change
(a snapshot of the whole state every ``SNAPSHOT_EVERY`` records) and ``sync`` returns once
every change so far is on disk (group commit: one fsync covers every writer waiting).
"""
from __future__ import annotations

import logging
from typing import Any, Protocol

from market.errors import JournalError
from market.storage import formats
from market.storage.journal import Journal, read_saved

log = logging.getLogger(__name__)

# What a damaged snapshot or record raises when it is applied.
DAMAGE = (KeyError, IndexError, TypeError, ValueError, AttributeError)


class Stored(Protocol):
    """What a database offers its data directory (call these under its lock)."""

    def restore_state(self, state: Any) -> None: ...

    def apply(self, record: dict) -> Any: ...

    def snapshot_state(self) -> dict: ...


class DataDirectory:
    """The journal and snapshots of one database; without ``open``, nothing is kept."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind  # the database's Hello name, as the format marker records it
        self.name = name
        self.journal: Journal | None = None

    @property
    def journaling(self) -> bool:
        return self.journal is not None

    def open(self, directory: str, database: Stored) -> None:
        """Load ``directory`` into ``database`` (hold its lock) and journal from now on."""
        journal = Journal(directory)
        found = formats.check(directory, self.kind)
        if found == formats.CURRENT:
            state, records = journal.load()
            snapshot_path, journal_path = journal.snapshot_path, journal.current_path()
        else:
            backup = formats.back_up(directory, found)
            saved = read_saved(backup)
            state, records = formats.upgrade(self.kind, found, saved.state, saved.records)
            snapshot_path = f"{backup}/{formats.SNAPSHOT_NAME} (upgraded from format {found})"
            journal_path = f"{saved.journal_path} (upgraded from format {found}), record"
        if state is not None:
            try:
                database.restore_state(state)
            except DAMAGE as exc:
                raise JournalError(f"{snapshot_path}: cannot restore it "
                                   f"({type(exc).__name__}: {exc})") from None
        for number, record in enumerate(records, 1):
            try:
                database.apply(record)
            except DAMAGE as exc:
                raise JournalError(f"{journal_path}:{number}: cannot apply this "
                                   f"record ({type(exc).__name__}: {exc})") from None
        if found != formats.CURRENT:
            journal.start_over(saved.generation, database.snapshot_state())
        if formats.read_marker(directory) is None or found != formats.CURRENT:
            formats.write_marker(directory, self.kind)
        self.journal = journal
        if found != formats.CURRENT:
            log.warning("%s: upgraded %s from data format %d to %d; the old files are kept "
                        "in %s", self.name, directory, found, formats.CURRENT, backup)
        log.info("%s: loaded %s with %d journal records", self.name, directory, len(records))

    def record(self, change: dict, database: Stored) -> None:
        """Journal one change already made (hold the database's lock)."""
        if self.journal is None:
            return
        self.journal.append(change)
        if self.journal.snapshot_due():
            self.journal.snapshot(database.snapshot_state())

    def sync(self) -> None:
        """Return once every change journaled so far is on disk (call without the lock); at
        once when nothing is pending, or without a directory."""
        if self.journal is not None:
            self.journal.sync()

    def stats(self) -> dict:
        """``{"journal"}``: the journal's figures for ``Stats`` (None without a directory)."""
        return {"journal": self.journal.stats() if self.journal else None}

    def refusal(self, op: str) -> None:
        """A single process serves every request."""

    def writable(self) -> bool:
        return True

    def hello(self) -> dict:
        return {}

    def start(self, address: str) -> None:
        """Nothing runs on its own."""
