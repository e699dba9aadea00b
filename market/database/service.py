"""The base of both databases: their op table, one lock, changes as records, and the one
place a reply waits for what it acknowledges.

A request goes, as in Redis's ``call()`` then ``propagatePendingCommands()``:

1. ``admit``: the connection proved the deployment secret (``market.net.secret``), and the
   request's ``deadline`` has not passed.
2. the op's handler, under ``self.lock``: it checks, then makes each change as one record
   passed to ``change``, which applies it through ``appliers`` (a journal's replay runs the
   same code), journals it (``market.database.persistence``) and returns ``Acknowledged``:
   the applier's result and the number of the change it published to the frontends' copies
   (``market.replication.feed``). Every write's handler returns an ``Acknowledged``, for
   a change it made or, for an earlier outcome given again, ``again``.
3. ``propagate``: the reply waits until every change so far is stored (on disk, or in etcd)
   and the copies show the change it acknowledges. Nothing else in the request path waits
   on other processes.

Also here: ``keyed_write`` (each key applied once, ``market.database.keyed``), the market
identity (``market.database.identity``, set by ``ClaimMarket``) and the ``Follow`` op. Where
the changes are stored is the ``storage``'s: a data directory, or nowhere
(``market.database.persistence``), or etcd, where one of several processes is active
(``market.database.replica``).
"""
from __future__ import annotations

import contextlib
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Iterator, Protocol

from market.database.api import CLAIM_MARKET, FOLLOW
from market.database.identity import MarketIdentity
from market.database.keyed import KeyedOutcomes
from market.database.persistence import DataDirectory
from market.errors import FINAL_ERRORS
from market.fields import SECRET_PROOF
from market.net.internal import InternalOp
from market.net.secret import Handshake
from market.net.service import ENVELOPE_FIELDS, Op, Peer, Request, Service
from market.replication.feed import Acknowledged, ChangeFeed
from protocol import ApiError, RawResult


class Data(Protocol):
    """What a database keeps (``market.customer.data``, ``market.product.data``): the state,
    the appliers of its record kinds, what the frontends' copies follow, and its snapshot."""

    appliers: dict[str, Callable[[dict], Any]]

    def followed_page(self, after: int) -> tuple[list[dict], int | None]:
        """A snapshot page of the followed data: entries with ids above ``after``, and the
        last one's id if more follow."""

    def dump(self) -> dict: ...

    def restore(self, state: dict) -> None: ...

    def stats(self) -> dict:
        """How much data it holds, for ``Stats``."""

    def take_over(self, now: float) -> None:
        """This process takes over from another one that held the same data (a replica's
        promotion): count whatever the other one renewed without a record as renewed now."""


class Storage(Protocol):
    """Where a database's changes are stored (``DataDirectory``, ``Replica``)."""

    def record(self, change: dict, database: Any) -> None:
        """Store one change already made (hold the database's lock)."""

    def sync(self) -> None:
        """Return once every change made so far is stored (call without the lock)."""

    def refusal(self, op: str) -> ApiError | None:
        """Why this process may not serve ``op`` now (None: it may)."""

    def writable(self) -> bool:
        """Whether this process may make changes now (its background work asks)."""

    def hello(self) -> dict:
        """What ``Hello`` says of it."""

    def stats(self) -> dict:
        """What ``Stats`` says of it."""

    def start(self, address: str) -> None:
        """The service is bound to ``address``: start whatever runs on its own."""


class Database(Service):
    """A service whose state (``data``) lives under one lock and changes only through
    ``change``. Subclasses make their ``data`` (``make_data``) and add their ops
    (``add_ops``). Ids start at 1 in a new market and go on from the saved state.
    """

    envelope_fields = ENVELOPE_FIELDS | {"deadline"}
    open_ops = frozenset({"Hello", "Authenticate"})

    def __init__(self) -> None:
        super().__init__()
        # Guards the state: every piece the subclass keeps, the identity and the outcomes.
        self.lock = threading.Lock()
        self.handshake = Handshake()
        self.outcomes = KeyedOutcomes()
        self.reset()
        self.storage: Storage = DataDirectory(self.kind, self.name)
        self.clock_offset = 0.0  # seconds this database's clock is shifted (tests only)
        self.keyed_ops: set[str] = set()  # the internal ops declared keyed
        self.writes: set[str] = set()  # the internal ops that are no reads
        self.ops["Authenticate"] = Op(self.authenticate, {"proof": SECRET_PROOF},
                                      needs_session=False)
        self.add_ops({CLAIM_MARKET: self.claim_market, FOLLOW: self.follow})

    def reset(self) -> None:
        """A new, empty state (hold the lock, but at construction): the identity, the keys'
        outcomes, the change feed (a new epoch: every copy starts over) and the data, and
        each record kind's applier."""
        self.identity = MarketIdentity()
        self.outcomes = KeyedOutcomes(self.outcomes.ttl, quota=self.outcomes.quota)
        self.feed = ChangeFeed()  # the followed data's changes, to the frontends' copies
        self.data = self.make_data(self.feed.publish)
        # Each record kind and the method that applies it; subclasses add theirs (update).
        self.appliers: dict[str, Callable[[dict], Any]] = {
            "market": self.identity.apply, "key_refused": self._apply_refusal,
            **self.data.appliers}

    def start(self) -> None:
        """Start the storage's own work (a replica's), once bound."""
        host, port = self.address
        self.storage.start(f"{host}:{port}")

    def add_ops(self, table: dict[InternalOp, Callable[..., Any]]) -> None:
        """Add internal ops to the op table: each declaration with its handler."""
        for api, handler in table.items():
            self.ops[api.name] = Op(handler, api.schema, api.needs_session)
            if api.keyed:
                self.keyed_ops.add(api.name)
            if not api.read:
                self.writes.add(api.name)
            if api.long_poll:
                self.request_stats.long_polls.add(api.name)

    # -- a request, end to end --------------------------------------------------------------

    def admit(self, request: Request, message: dict) -> None:
        if not self.handshake.admits(request.peer) and request.op not in self.open_ops:
            raise ApiError("forbidden", "This connection has not proven the deployment secret.")
        refusal = self.storage.refusal(request.op)
        if refusal is not None:
            raise refusal
        deadline = message.get("deadline")
        if deadline is not None:
            if type(deadline) not in (int, Decimal) or not 0 <= deadline < 2 ** 40:
                raise ApiError("bad_request", "'deadline' must be a time in seconds since 1970.")
            request.deadline = float(deadline) - self.clock_offset  # in this host's clock
            if request.op not in self.keyed_ops:  # those check it once their key is looked up
                request.check_deadline()

    def dispatch(self, message: dict, peer: Peer | None = None) -> Any:
        """Call the op's handler, then ``propagate`` its reply (an error reply too: it may
        follow a change, such as a session found expired and ended)."""
        try:
            reply = super().dispatch(message, peer)
        except ApiError:
            self.propagate(Acknowledged(None))
            raise
        if message["op"] in self.writes and not isinstance(reply, Acknowledged):
            raise TypeError(f"the handler of {message['op']} did not say what its reply "
                            "acknowledges")
        return self.propagate(reply)

    def propagate(self, reply: Any) -> Any:
        """Hold a reply until every change so far is stored (nothing is shown before it is
        durable: a reply may show another request's change) and, for an ``Acknowledged``
        one, until the frontends' copies show the change it acknowledges; return its result.
        """
        self.storage.sync()
        if not isinstance(reply, Acknowledged):
            return reply
        if reply.change:
            self.feed.wait_seen(reply.change)
        return reply.result

    # -- changes --------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self, request: Request) -> Iterator[None]:
        """Hold the state lock for a change, refusing it if the request's deadline has passed."""
        with self.lock:
            request.check_deadline()
            yield

    def change(self, record: dict) -> Acknowledged:
        """Apply one change and journal it (hold ``self.lock``): the applier's result, and the
        number of the change it published to the copies (0: none). A process that may not
        make changes now (a replica that stopped being the active one: its storage changes
        that under this lock) refuses it, ``unavailable``, before anything is applied."""
        if not self.storage.writable():
            raise ApiError("unavailable", f"This {self.name} is not the active one now; "
                                          "nothing was changed; try again.")
        before = self.feed.published
        result = self.apply(record)
        self.storage.record(record, self)
        return Acknowledged(result, self.feed.published if self.feed.published > before else 0)

    def apply(self, record: dict) -> Any:
        """Apply one record, live or replayed; a keyed record's result is its key's outcome."""
        result = self.appliers[record["kind"]](record)
        if "keyed" in record:
            self.outcomes.remember(record["keyed"], result)
        self.identity.saw(record)
        return result

    def again(self, result: Any) -> Acknowledged:
        """An earlier outcome given again: it acknowledges every change so far, since the
        reply that first told it may still be waiting for its copies (hold ``self.lock``)."""
        return Acknowledged(result, self.feed.published)

    def keyed_write(self, request: Request, scope: str, key: str, fingerprint: str,
                    write: Callable[[dict], Acknowledged]) -> Acknowledged:
        """Apply a keyed write at most once (hold ``self.lock``).

        A key already used in ``scope`` gets its first outcome ``again`` (even past the
        request's deadline: the write was made, and a resend must learn it), or ``conflict``
        if it was used for another request (``fingerprint``). Otherwise the deadline and the
        account's quota of keys are checked, and ``write(keyed)`` makes the change with
        ``keyed`` in its record and returns what ``change`` returned. A final error of
        ``write`` is journaled too (``key_refused``), so that no resend, even after a
        restart, applies what was refused.
        """
        entry = self.outcomes.find(scope, key, fingerprint)
        if entry is not None:
            return self.again(entry.replay())
        request.check_deadline()
        self.outcomes.check_quota(scope, key)
        keyed = {"scope": scope, "key": key, "fingerprint": fingerprint,
                 "at": round(time.time(), 3)}
        try:
            return write(keyed)
        except ApiError as error:
            if error.code in FINAL_ERRORS:
                self.change({"kind": "key_refused", **keyed,
                             "error": [error.code, error.message]})
            raise

    def _apply_refusal(self, r: dict) -> None:
        self.outcomes.remember(r, error=tuple(r["error"]))

    # -- the ops every database serves ------------------------------------------------------

    def hello(self, request: Request) -> dict:
        # Read without the lock (each field is written whole), so Hello never waits.
        return {**super().hello(request), **self.identity.hello(), **self.storage.hello(),
                "time": round(time.time() + self.clock_offset, 3),
                **self.handshake.challenge(request.peer)}

    def authenticate(self, request: Request, proof: str) -> dict:
        self.handshake.authenticate(request.peer, proof)
        return {}

    def claim_market(self, request: Request, market: bytes) -> Acknowledged:
        """Take ``market`` as this database's identity unless it has one; reply the one held."""
        with self.lock:
            record = self.identity.claim(market.hex())
            return self.change(record) if record else Acknowledged({"market": self.identity.market})

    def follow(self, request: Request, follower: str, epoch: str, seen: int, after: int | None,
               wait_ms: int) -> dict | RawResult:
        """A frontend's long poll on the change feed (``market.replication.feed``)."""
        return self.feed.poll(follower, epoch, seen, after, wait_ms / 1000,
                              self.data.followed_page, self.lock)

    def stats(self, request: Request) -> dict:
        """``Stats`` adds the data held, the keys remembered, the change feed's and the
        storage's (a data directory's journal, or a replica's role and log)."""
        with self.lock:
            data = self.data.stats()
            keys = self.outcomes.stats()
        return {**super().stats(request), "data": data, "keys": keys,
                "feed": self.feed.stats(), **self.storage.stats()}

    def make_data(self, publish: Callable[[dict], int]) -> Data:
        """The state this database keeps (subclasses say); ``publish``: the change feed's."""
        raise NotImplementedError

    # -- the data directory (market.database.persistence) -----------------------------------

    def restore_state(self, state: Any) -> None:
        """Take back a snapshot's whole state (hold the lock)."""
        self.identity.loaded(state)
        self.data.restore(state)
        self.outcomes.restore(state.get("outcomes", []))

    def snapshot_state(self) -> dict:
        return {**self.data.dump(), "market": self.identity.market,
                "outcomes": self.outcomes.dump()}

    def open_data_dir(self, directory: str) -> None:
        """Load the state saved in ``directory`` and journal every change from now on."""
        self.feed.restarted()
        with self.lock:
            self.storage.open(directory, self)
