"""The base of both databases: one lock, a journal, deadlines, and the deployment secret.

``Database`` adds to ``Service``: ``writing(request)`` (the state lock,
refusing a request whose deadline has passed), ``record``/``apply``/``dump``/
``restore`` (journaling, see ``market.storage.journal``), ``Hello``'s challenge and
``Authenticate``, and the market identity: ``Hello`` tells it (and this
database's clock, and whether it holds any data), ``ClaimMarket`` sets it once;
the frontends check that their two databases share one (``market.frontend.identity``).
``keyed_write`` applies a write at most once per idempotency key and answers a
resend with its first outcome (``outcomes``, journaled with the change it keys).
``Recent`` is the bounded bookkeeping both databases use for ids they must
remember for a while. ``database_main`` starts one.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import hmac
import logging
import secrets
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Iterator

from market.errors import FINAL_ERRORS, JournalError
from market.fields import SECRET_PROOF
from market.keys import KeyedOutcomes
from market.net.flags import (
    configure_logging,
    env_default,
    exit_at_start,
    is_loopback,
    service_parser,
)
from market.net.internal import CLAIM_MARKET, FOLLOW, InternalOp
from market.net.secret import proof as auth_proof
from market.net.secret import read_secret
from market.net.server import serve
from market.net.service import ENVELOPE_FIELDS, Op, Peer, Request, Service
from market.replication.feed import ChangeFeed
from market.storage import formats
from market.storage.journal import Journal, read_saved
from protocol import ApiError, RawResult

log = logging.getLogger("market.database.service")



class Recent:
    """Keys remembered for ``ttl`` seconds after they were added (bounded bookkeeping:
    its size follows the rate of additions, not the age of the process).

    Not thread-safe: use it under its owner's lock.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._added: collections.OrderedDict[str, tuple[float, Any]] = collections.OrderedDict()

    def put(self, key: str, value: Any = True) -> None:
        now = time.monotonic()
        self._added.pop(key, None)
        self._added[key] = (now, value)
        while self._added:
            oldest_key, (added, _) = next(iter(self._added.items()))
            if now - added <= self.ttl:
                break
            del self._added[oldest_key]

    def get(self, key: str, default: Any = None) -> Any:
        entry = self._added.get(key)
        return default if entry is None else entry[1]

    def __contains__(self, key: str) -> bool:
        return key in self._added

    def __len__(self) -> int:
        return len(self._added)

    def items(self) -> list[tuple[str, Any]]:
        return [(key, value) for key, (_, value) in self._added.items()]


class Database(Service):
    """A service whose state can be journaled to a data directory, serving only its frontends.

    Subclasses change their state under ``self._lock`` (taken by ``writing``
    for a request) and describe each change as a JSON record passed to
    ``self.change``, which applies it through ``appliers`` (replay runs the same
    method) and journals it; ``dump``/``restore`` convert
    the whole state for snapshots. The reply to a request leaves only once its
    records are on disk.

    Requests may carry a ``deadline`` (wall-clock seconds) in the envelope:
    work arriving after it is refused, and ``writing`` checks it again once
    the lock is held, right before the change, so a frontend that gave up
    waiting can say "nothing changed". With a ``secret``, every op but
    ``Hello`` and ``Authenticate`` is ``forbidden`` until the connection has
    answered its challenge.

    ``market`` is the identity of the market this database belongs to (None until
    a frontend claims one): journaled like any change, so it lasts as long as the
    data; a memory-only database forgets it with its data. Ids start at 1 in a new
    market and go on from the saved state.
    """

    envelope_fields = ENVELOPE_FIELDS | {"deadline"}
    open_ops = frozenset({"Hello", "Authenticate"})

    def __init__(self) -> None:
        super().__init__()
        self.ops["Authenticate"] = Op(self.authenticate, {"proof": SECRET_PROOF},
                                      needs_session=False)
        self.secret: bytes | None = None
        self._lock = threading.Lock()
        self._journal: Journal | None = None
        # Each record kind and the method that applies it; subclasses add theirs (update).
        self.appliers: dict[str, Callable[[dict], None]] = {"market": self._apply_market,
                                                             "key_refused": self._apply_refusal}
        # Under self._lock: the market identity, and whether nothing but it was ever stored.
        self.market: str | None = None
        self.empty = True
        self.clock_offset = 0.0  # seconds this database's clock is shifted (tests only)
        # Under self._lock: the first outcome of each keyed write, by (scope, key).
        self.outcomes = KeyedOutcomes()
        self.keyed_ops: set[str] = set()  # names of the internal ops declared keyed
        self.feed = ChangeFeed()  # the followed data's changes, to the frontends' copies
        self.serve({CLAIM_MARKET: self.claim_market, FOLLOW: self.follow})

    def serve(self, table: dict[InternalOp, Callable[..., Any]]) -> None:
        """Add internal ops to the op table: each declaration with its handler."""
        for api, handler in table.items():
            self.ops[api.name] = Op(handler, api.schema, api.needs_session)
            if api.keyed:
                self.keyed_ops.add(api.name)
            if api.long_poll:
                self.request_stats.long_polls.add(api.name)

    def stats(self, request: Request) -> dict:
        """``Stats`` adds the data held (``data_stats``), the change feed's and, with a data
        directory, the journal's (None without one)."""
        return {**super().stats(request), "data": self.data_stats(),
                "feed": self.feed.stats(),
                "journal": self._journal.stats() if self._journal else None}

    def data_stats(self) -> dict[str, int]:
        """How much data this database holds, for ``Stats`` (subclasses say)."""
        return {}

    def hello(self, request: Request) -> dict:
        reply = super().hello(request)
        # Read without the lock (each is written under it), so Hello never waits for a change.
        reply.update(market=self.market, empty=self.empty)
        reply["time"] = round(time.time() + self.clock_offset, 3)
        if self.secret is not None:
            request.peer.challenge = secrets.token_bytes(32)
            reply["challenge"] = request.peer.challenge.hex()
        return reply

    def authenticate(self, request: Request, proof: str) -> dict:
        peer = request.peer
        if self.secret is None or not peer.challenge or not hmac.compare_digest(
                proof.encode("utf-8", "replace"),
                auth_proof(self.secret, peer.challenge).encode()):
            raise ApiError("forbidden", "Wrong proof of the deployment secret (say Hello first).")
        peer.authenticated, peer.challenge = True, b""
        return {}

    def claim_market(self, request: Request, market: bytes) -> dict:
        """Take ``market`` as this database's identity unless it has one; return the one held."""
        with self._lock:
            if self.market is None:
                self.change({"kind": "market", "market": market.hex()})
            return {"market": self.market}

    def follow(self, request: Request, follower: str, epoch: str, seen: int, after: int | None,
               wait_ms: int) -> dict | RawResult:
        """A frontend's long poll on the change feed (``market.replication.feed``)."""
        return self.feed.poll(follower, epoch, seen, after, wait_ms / 1000,
                              self.followed_page, self._lock)

    def followed_page(self, after: int) -> tuple[list[dict], int | None]:
        """A snapshot page of the followed data: entries with ids above ``after``, and the
        last one's id if more follow (hold the lock; subclasses say)."""
        raise NotImplementedError

    def _apply_refusal(self, r: dict) -> None:
        self.outcomes.remember(r["scope"], r["key"], r["fingerprint"], r["at"],
                               error=tuple(r["error"]))

    def _apply_market(self, r: dict) -> None:
        self.market = r["market"]

    def admit(self, request: Request, message: dict) -> None:
        if (self.secret is not None and not request.peer.authenticated
                and request.op not in self.open_ops):
            raise ApiError("forbidden", "This connection has not proven the deployment secret.")
        deadline = message.get("deadline")
        if deadline is not None:
            if type(deadline) not in (int, Decimal) or not 0 <= deadline < 2 ** 40:
                raise ApiError("bad_request", "'deadline' must be a time in seconds since 1970.")
            request.deadline = float(deadline) - self.clock_offset  # in this host's clock
            if request.op not in self.keyed_ops:  # those check it once their key is looked up
                request.check_deadline()

    @contextlib.contextmanager
    def writing(self, request: Request) -> Iterator[None]:
        """Hold the state lock for a change, refusing it if the request's deadline has passed."""
        with self._lock:
            request.check_deadline()
            yield

    def keyed_write(self, request: Request, scope: str, key: str, print_: str,
                    write: Callable[[dict], None]) -> Any:
        """Apply a keyed write at most once and return its outcome (hold ``self._lock``).

        A key already used in ``scope`` gets its first outcome again (even past the
        request's deadline: the write was made, and a resend must learn it), or
        ``conflict`` if it was used for another request (``print_``). Otherwise the
        deadline is checked and ``write(keyed)`` makes the change with ``keyed`` in its
        record; the record's applier keeps the outcome (``KeyedOutcomes.keep``), so it
        is journaled with the change and is the reply, live and to any resend. A final
        error of ``write`` is journaled too (``key_refused``), so that no resend, even
        after a restart, applies what was refused.
        """
        entry = self.outcomes.find(scope, key, print_)
        if entry is None:
            request.check_deadline()
            keyed = {"scope": scope, "key": key, "fingerprint": print_,
                     "at": round(time.time(), 3)}
            try:
                write(keyed)
            except ApiError as error:
                if error.code in FINAL_ERRORS:
                    self.change({"kind": "key_refused", **keyed,
                                 "error": [error.code, error.message]})
                raise
            entry = self.outcomes.find(scope, key, print_)
        else:  # its change may still be on the way to the copies
            self.feed.acknowledges(self.feed.published)
        return entry.replay()

    def open_data_dir(self, directory: str) -> None:
        """Load the state saved in ``directory`` and journal every change from now on.

        A directory of an older format (``market.storage.formats``) is upgraded in place: its
        files are copied to ``backup-format-N/``, their content converted and loaded,
        and the state written anew in the current format. A newer format is refused.
        """
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
        damaged = (KeyError, IndexError, TypeError, ValueError, AttributeError)
        with self._lock:
            if state is not None:
                self.market, self.empty = state.get("market"), False
                try:
                    self.restore(state)
                    self.outcomes.restore(state.get("outcomes", []))
                except damaged as exc:
                    raise JournalError(f"{snapshot_path}: cannot restore it "
                                       f"({type(exc).__name__}: {exc})") from None
            for number, record in enumerate(records, 1):
                try:
                    self.apply(record)
                except damaged as exc:
                    raise JournalError(f"{journal_path}:{number}: cannot apply this "
                                       f"record ({type(exc).__name__}: {exc})") from None
                self.empty = self.empty and record.get("kind") == "market"
            if found != formats.CURRENT:
                journal.start_over(saved.generation, self._snapshot_state())
        if formats.read_marker(directory) is None or found != formats.CURRENT:
            formats.write_marker(directory, self.kind)
        self._journal = journal
        if found != formats.CURRENT:
            log.warning("%s: upgraded %s from data format %d to %d; the old files are kept "
                        "in %s", self.name, directory, found, formats.CURRENT, backup)
        log.info("%s: loaded %s with %d journal records", self.name, directory, len(records))

    @property
    def journaling(self) -> bool:
        return self._journal is not None

    def record(self, change: dict) -> None:
        """Journal one change already made (call under ``self._lock``)."""
        self.empty = self.empty and change.get("kind") == "market"
        if self._journal is None:
            return
        self._journal.append(change)
        if self._journal.snapshot_due():
            self._journal.snapshot(self._snapshot_state())

    def _snapshot_state(self) -> dict:
        return {**self.dump(), "market": self.market,
                "outcomes": self.outcomes.dump()}

    def dispatch(self, message: dict, peer: Peer | None = None) -> Any:
        try:
            return super().dispatch(message, peer)
        finally:
            self.wait_for_journal()
            self.wait_for_copies()

    def wait_for_copies(self) -> None:
        """Return once the frontends' copies show the changes the reply acknowledges: those
        its request published (and every one before them), or, for a keyed write's earlier
        outcome given again, every change so far (``keyed_write``). A ``Follow`` publishes
        nothing, so it never waits (for itself).

        Other replies go at once, a cart change or a refused write too: one may show a
        change its writer is still waiting on, never one older than a write acknowledged
        to anyone.
        """
        number = self.feed.take_acknowledged()
        if number is not None:
            self.feed.wait_seen(number)

    def wait_for_journal(self) -> None:
        """Return once every change made so far is on disk (call without the lock).

        Every reply waits so, not only for its own changes: a reply computed after
        another request's change may show it (a purchase verdict, a session), and
        nothing may be shown before it is durable. At once when nothing is pending.
        """
        if self._journal is not None:
            self._journal.sync()

    def change(self, record: dict) -> None:
        """Apply one change and journal it (hold ``self._lock``): every change is a record,
        so replaying the journal after a restart runs exactly the code that ran live."""
        self.apply(record)
        self.record(record)

    def apply(self, record: dict) -> None:
        self.appliers[record["kind"]](record)

    def dump(self) -> Any:
        raise NotImplementedError

    def restore(self, state: Any) -> None:
        raise NotImplementedError


def database_parser(description: str, env_prefix: str, port: int) -> argparse.ArgumentParser:
    parser = service_parser(description, env_prefix, port)
    env_default(parser, "--data-dir", f"{env_prefix}_DATA_DIR", "",
                "keep a journal and snapshots here (default: memory only)")
    # For tests: shift this database's clock (Hello's time, deadlines) by SECONDS.
    parser.add_argument("--test-clock-offset", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser


def database_main(database: Database, args: argparse.Namespace) -> None:
    """Take the secret, open the data directory if asked (stop with a clear message if it is
    damaged), then serve."""
    configure_logging(database.kind, args.log_level)
    database.secret = read_secret(args.secret_file)
    database.clock_offset = args.test_clock_offset
    if database.secret is None and not is_loopback(args.host):
        exit_at_start(f"{database.name}: refusing to listen on {args.host} without a "
                      "secret: beyond loopback anyone could change the data; pass --secret-file")
    if args.data_dir:
        database.feed.restarted()
        try:
            database.open_data_dir(args.data_dir)
        except (JournalError, OSError) as exc:
            exit_at_start(f"{database.name}: cannot load the data directory: {exc}")
    serve(database, args)
