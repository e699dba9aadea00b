"""market/journal.py: append + group commit, load, torn and corrupt lines, snapshots;
and a database's replies waiting for the journal (durable before visible)."""
from __future__ import annotations

import os
import stat
import threading

import pytest

from market.database.service import Database
from market.errors import JournalError
from market.net.service import Op
from market.storage.journal import Journal, read_saved


@pytest.fixture
def journals():
    """Opens journals on a directory; closes their files afterwards (Journal has no close)."""
    opened = []

    def open_journal(directory, **kwargs):
        journal = Journal(str(directory), **kwargs)
        opened.append(journal)
        return journal

    yield open_journal
    for journal in opened:
        if journal._file is not None:
            journal._file.close()


def write(journal, *records):
    for record in records:
        journal.wait(journal.append(record))


def test_an_empty_directory_loads_as_nothing(tmp_path, journals):
    assert journals(tmp_path / "data").load() == (None, [])


def test_appended_records_load_again_in_order(tmp_path, journals):
    first = journals(tmp_path)
    first.load()
    write(first, {"op": "a", "n": 1}, {"op": "b", "text": "line\nbreak ☃"})
    assert journals(tmp_path).load() == (None, [{"op": "a", "n": 1},
                                                 {"op": "b", "text": "line\nbreak ☃"}])


def test_wait_covers_every_record_appended_before_it(tmp_path, journals):
    journal = journals(tmp_path)
    journal.load()
    first = journal.append({"n": 1})
    second = journal.append({"n": 2})
    journal.wait(second)
    journal.wait(first)  # already durable: returns at once
    with open(journal.current_path(), "rb") as f:
        assert f.read() == b'{"n":1}\n{"n":2}\n'


def test_a_torn_last_line_is_cut_off_and_ignored(tmp_path, journals):
    journal = journals(tmp_path)
    journal.load()
    write(journal, {"n": 1})
    with open(journal.current_path(), "ab") as f:
        f.write(b'{"n":2,"na')
    again = journals(tmp_path)
    assert again.load() == (None, [{"n": 1}])
    write(again, {"n": 3})  # appended after the cut, not glued to the torn bytes
    assert journals(tmp_path).load() == (None, [{"n": 1}, {"n": 3}])


def test_a_torn_line_that_happens_to_be_valid_json_is_still_ignored(tmp_path, journals):
    (tmp_path / "journal-0.jsonl").write_bytes(b'{"n":1}\n{"n":2}')
    assert journals(tmp_path).load() == (None, [{"n": 1}])


@pytest.mark.parametrize("bad", [b"garbage\n", b"[1,2]\n", b'"text"\n', b'{"n":\n', b"\n"])
def test_a_corrupt_line_names_the_file_and_line(tmp_path, journals, bad):
    path = tmp_path / "journal-0.jsonl"
    path.write_bytes(b'{"n":1}\n' + bad + b'{"n":3}\n')
    with pytest.raises(JournalError) as info:
        journals(tmp_path).load()
    assert str(info.value) == f"{path}:2: corrupt record"


def test_a_corrupt_complete_last_line_is_not_taken_for_a_torn_one(tmp_path, journals):
    path = tmp_path / "journal-0.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":\n')
    with pytest.raises(JournalError, match=":2: corrupt record"):
        journals(tmp_path).load()


def test_snapshot_then_load_gives_the_state_and_later_records(tmp_path, journals):
    journal = journals(tmp_path)
    journal.load()
    write(journal, {"n": 1}, {"n": 2})
    journal.snapshot({"items": [1, 2]})
    write(journal, {"n": 3})
    again = journals(tmp_path)
    assert again.load() == ({"items": [1, 2]}, [{"n": 3}])
    assert again.generation == 1
    assert sorted(os.listdir(tmp_path)) == ["journal-1.jsonl", "snapshot.json"]


def test_snapshot_is_due_after_snapshot_every_records(tmp_path, journals):
    journal = journals(tmp_path, snapshot_every=2)
    journal.load()
    write(journal, {"n": 1})
    assert not journal.snapshot_due()
    write(journal, {"n": 2})
    assert journal.snapshot_due()
    journal.snapshot({})
    assert not journal.snapshot_due()


def test_records_loaded_count_towards_the_next_snapshot(tmp_path, journals):
    (tmp_path / "journal-0.jsonl").write_bytes(b'{"n":1}\n{"n":2}\n')
    journal = journals(tmp_path, snapshot_every=2)
    journal.load()
    assert journal.snapshot_due()


def test_a_corrupt_snapshot_names_the_file(tmp_path, journals):
    (tmp_path / "snapshot.json").write_bytes(b'{"generation": 1}')
    with pytest.raises(JournalError, match=r"snapshot\.json: corrupt snapshot"):
        journals(tmp_path).load()


def test_data_directory_and_files_are_private(tmp_path, journals):
    directory = tmp_path / "data"
    journal = journals(directory)
    journal.load()
    write(journal, {"n": 1})
    journal.snapshot({"s": 1})
    write(journal, {"n": 2})
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("snapshot.json", "journal-1.jsonl"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name


def test_read_saved_changes_nothing_not_even_a_torn_line(tmp_path):
    (tmp_path / "snapshot.json").write_bytes(b'{"generation": 2, "state": {"s": 1}}')
    (tmp_path / "journal-2.jsonl").write_bytes(b'{"n":1}\n{"n":2')
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    saved = read_saved(str(tmp_path))
    assert (saved.generation, saved.state, saved.records) == (2, {"s": 1}, [{"n": 1}])
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before


def test_start_over_leaves_one_snapshot_and_an_empty_journal(tmp_path, journals):
    (tmp_path / "snapshot.json").write_bytes(b'{"generation": 4, "state": {"old": 1}}')
    (tmp_path / "journal-4.jsonl").write_bytes(b'{"old":2}\n')
    (tmp_path / "journal-3.jsonl").write_bytes(b'{"stale":1}\n')  # left by a crash
    journal = journals(tmp_path)
    journal.start_over(4, {"new": 1})
    write(journal, {"n": 1})
    assert sorted(os.listdir(tmp_path)) == ["journal-5.jsonl", "snapshot.json"]
    assert journals(tmp_path).load() == ({"new": 1}, [{"n": 1}])


def test_sync_covers_every_record_appended_by_anyone(tmp_path, journals):
    journal = journals(tmp_path)
    journal.load()
    journal.append({"n": 1})  # appended by another thread, which has not waited yet
    journal.sync()
    with open(journal.current_path(), "rb") as f:
        assert f.read() == b'{"n":1}\n'


class Counter:
    """A database's data of one counter."""

    def __init__(self) -> None:
        self.count = 0
        self.appliers = {"add": self._add}

    def _add(self, record: dict) -> None:
        self.count += 1

    def followed_page(self, after: int) -> tuple[list[dict], int | None]:
        return [], None

    def dump(self) -> dict:
        return {"count": self.count}

    def restore(self, state: dict) -> None:
        self.count = state["count"]

    def stats(self) -> dict:
        return {"count": self.count}


class Tally(Database):
    """A database of one counter: the ``add`` record changes it, ``Read`` shows it."""

    name = "tally"
    kind = "tally"

    def __init__(self) -> None:
        super().__init__()
        self.ops["Read"] = Op(self.read, {}, needs_session=False)

    def make_data(self, publish) -> Counter:
        return Counter()

    def read(self, request) -> dict:
        with self.lock:
            return {"count": self.data.count}


def test_no_reply_shows_a_change_before_it_is_on_disk(tmp_path):
    """Another request's change, applied but not yet synced by its own thread, may be
    seen by a reply only once it is on disk: the reply waits for it too."""
    db = Tally()
    db.open_data_dir(str(tmp_path))
    with db.lock:  # a request's change; its thread has not reached its wait yet
        db.change({"kind": "add"})
    replies = []
    reader = threading.Thread(target=lambda: replies.append(db.dispatch({"op": "Read"})))
    reader.start()
    reader.join(10)
    assert replies == [{"count": 1}]
    assert (tmp_path / "journal-0.jsonl").read_bytes() == b'{"kind":"add"}\n'
    db.storage.journal._file.close()
