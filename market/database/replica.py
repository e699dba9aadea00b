"""One database kept by two or more processes on etcd (``--etcd``, contract §16): one is
active, the others stand by, and a standby takes over when the active one goes.

``Replica`` is a database's storage in that mode (where ``DataDirectory`` is without it):

- **Start**: load the state from etcd (``market.storage.etcdlog.load``: the snapshot and
  the batches since, applied by the same appliers as a restart's replay), then stand by.
- **Standby**: follow the log (an etcd watch) and apply each new batch; answer every request
  but ``Hello``, ``Authenticate`` and ``Stats`` ``unavailable`` ("not the active ...", with
  the active one's address); and, whenever the ``leader`` key is free, campaign for it.
- **Promotion**: holding the ``leader`` key (under an etcd lease of ``ETCD_LEADER_TTL``
  seconds), apply whatever the log holds still unapplied (the deposed process can append
  nothing more), wait out the copies made from the previous active one
  (``ChangeFeed.restarted``), count every session as used now, and serve: every change is
  appended to the log (``EtcdLog``) and acknowledged only once etcd committed it.
- **Leadership**: renewed every ``ETCD_RENEW_EVERY`` seconds; the active process answers only
  until ``ETCD_LEADER_MARGIN`` before the renewal it sent last could run out, so it stops
  answering (reads and copies included) before etcd can give the key to another.
- **Demotion**: when a renewal fails past that point, an append finds the leadership gone
  (``Deposed``), or etcd never answered an append while the leadership was sure (the log is
  unsure of it: ``EtcdLog``'s broken), it makes no change more (under the database's lock,
  so none is made half), drops every connection (a request waiting for its append learns
  no outcome, as when a process dies: its key tells it later), forgets its state (which may
  hold changes never committed) and loads it again from etcd: a standby once more.
- **etcd's leader**: the active process sends its appends to etcd's raft leader (a follower
  would pass each one on: a hop more), looked for at each promotion and every
  ``ETCD_LEADER_CHECK`` seconds.

The frontends take a list of addresses per database and use whichever answers as active.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from market.config import (
    ETCD_LEADER_CHECK,
    ETCD_LEADER_MARGIN,
    ETCD_LEADER_TTL,
    ETCD_QUIET,
    ETCD_RENEW_EVERY,
)
from market.errors import EtcdError
from market.storage.etcd import Etcd, absent, prefix_end, put, unb64
from market.storage.etcdlog import EtcdLog, load, log_key, namespace, seq_of
from protocol import ApiError

if TYPE_CHECKING:
    from market.database.service import Database

log = logging.getLogger(__name__)
STANDBY, ACTIVE = "standby", "active"


class Replica:
    """A database's storage on etcd, with the role of its process (see the module doc)."""

    def __init__(self, etcd: Etcd, database: "Database", name: str | None = None) -> None:
        self.etcd = etcd
        self.database = database
        self.space = namespace(database.kind)
        self.name = name or secrets.token_hex(4)
        self.role = STANDBY
        self.active_at: str | None = None  # the active process's address, as last seen
        self.address = ""  # where this process serves (HOST:PORT), once known
        # Guards the fields below and the role's changes. The log is appended to only while
        # ACTIVE, and the state is applied from the log only while STANDBY.
        self._lock = threading.Lock()
        self._seq = 0  # the last batch of the log applied here
        self._revision = 0  # etcd's revision the state was read at or followed to
        self._log: EtcdLog | None = None
        self._lease = 0
        self._answers_until = 0.0  # time.monotonic() past which the active one may not answer
        self._promotions = 0
        self._promoted = threading.Event()  # set at each promotion

    # -- the storage interface of a Database ---------------------------------------------------

    def record(self, change: dict, database: Any) -> None:
        """Queue a change made by the active process (hold the database's lock)."""
        assert self.role == ACTIVE and self._log is not None, "a standby makes no change"
        self._log.append(change)
        self._log.cut_snapshot_if_due()

    def sync(self) -> None:
        """Return once every change made so far is in etcd. A process that finds itself
        deposed, or its log broken, demotes (the reply never leaves: see ``_demote``)."""
        current = self._log
        if current is None:
            return
        try:
            current.sync()
        except EtcdError as error:  # Deposed, or the log broken: this reply never leaves
            self._demote(str(error))
            raise ApiError("unavailable", f"This {self.database.name} is no longer the active "
                                          "one.") from None

    def refusal(self, op: str) -> ApiError | None:
        """Why this process may not serve ``op`` now (None: it may)."""
        if self.writable():
            return None
        if op in ("Hello", "Authenticate", "Stats"):
            return None
        where = f"; the active one is at {self.active_at}" if self.active_at else ""
        return ApiError("unavailable", f"This is not the active {self.database.name}{where}; "
                                       "nothing was changed.")

    def writable(self) -> bool:
        """Whether this process may make changes now: it is active and its leadership sure."""
        return self.role == ACTIVE and time.monotonic() < self._answers_until

    def hello(self) -> dict:
        return {"role": self.role, "active": self.active_at}

    def stats(self) -> dict:
        with self._lock:
            figures = {"role": self.role, "name": self.name, "active": self.active_at,
                       "seq": self._log.seq if self._log else self._seq,
                       "promotions": self._promotions, "etcd": self.etcd.urls}
        if self._log is not None:
            figures["log"] = self._log.stats()
        return figures

    # -- the life of a replica -----------------------------------------------------------------

    def start(self, address: str) -> None:
        """Load the state from etcd, then stand by and campaign (threads of their own)."""
        self.address = address
        self._try(self._reload)
        threading.Thread(target=self._follow_forever, name="etcd-follow", daemon=True).start()
        threading.Thread(target=self._campaign_forever, name="etcd-campaign",
                         daemon=True).start()
        threading.Thread(target=self._find_leader_forever, name="etcd-leader",
                         daemon=True).start()

    def _reload(self) -> None:
        """Forget the state and load it from etcd (the start, and each demotion)."""
        loaded = load(self.etcd, self.database.kind)
        with self.database.lock:
            self.database.reset()
            if loaded.state is not None:
                self.database.restore_state(loaded.state)
            for record in loaded.records:
                self.database.apply(record)
            with self._lock:
                self._seq, self._revision = loaded.seq, loaded.revision
        log.info("%s: loaded from etcd up to batch %d (%d records since the snapshot)",
                 self.database.name, loaded.seq, len(loaded.records))

    def _follow_forever(self) -> None:
        """Forever, while standing by: apply each new batch of the log, in order; reload
        when a batch is missed (compacted away)."""
        while True:
            if self.role == ACTIVE:
                time.sleep(ETCD_RENEW_EVERY)
                continue
            try:
                for revision, events in self.etcd.watch(
                        self.space + b"log/", prefix_end(self.space + b"log/"),
                        self._revision + 1, quiet=ETCD_QUIET):
                    if not self._apply(revision, events):
                        break
            except EtcdError as error:  # compacted, or etcd away: read it all again
                if self.role == STANDBY:
                    log.info("%s: reloading from etcd (%s)", self.database.name, error)
                    self._try(self._reload)
            time.sleep(0.05)

    def _apply(self, revision: int, events: list[dict]) -> bool:
        """Apply the new batches among ``events`` (False: stop following, to reload or
        because this process became active)."""
        with self.database.lock:
            if self.role != STANDBY:
                return False
            for event in events:
                if event.get("type") == "DELETE":
                    continue  # batches covered by a snapshot, dropped
                seq = seq_of(self.space, unb64(event["kv"]["key"]))
                if seq <= self._seq:
                    continue
                if seq != self._seq + 1:
                    raise EtcdError(f"batch {self._seq + 1} was missed")
                for record in json.loads(unb64(event["kv"].get("value", ""))):
                    self.database.apply(record)
                self._seq = seq
            self._revision = revision
        return True

    def _campaign_forever(self) -> None:
        """Forever: while standing by, take the leadership when it is free; while active,
        renew it (demoting when that fails for too long)."""
        while True:
            try:
                if self.role == STANDBY:
                    self._campaign()
                else:
                    self._renew()
            except EtcdError as error:
                if self.role == ACTIVE and time.monotonic() >= self._answers_until:
                    self._demote(f"etcd did not renew the leadership: {error}")
            time.sleep(ETCD_RENEW_EVERY)

    def _campaign(self) -> None:
        value, _ = self.etcd.get(self.space + b"leader")
        if value is not None:
            self.active_at = json.loads(value).get("address")
            return
        lease = self.etcd.grant(ETCD_LEADER_TTL)
        sent = time.monotonic()
        claim = json.dumps({"name": self.name, "address": self.address}).encode()
        won, _ = self.etcd.txn([absent(self.space + b"leader")],
                               [put(self.space + b"leader", claim, lease)])
        if not won:
            self.etcd.revoke(lease)
            return
        self._promote(lease, claim, sent)

    def _promote(self, lease: int, claim: bytes, sent: float) -> None:
        """The leadership is ours: apply what the log holds still, then serve."""
        loaded_to = self._catch_up()
        with self.database.lock:
            with self._lock:
                self._lease = lease
                self._log = EtcdLog(self.etcd, self.database.kind, claim, loaded_to,
                                    self.database.snapshot_state, self.writable)
                self._answers_until = sent + ETCD_LEADER_TTL - ETCD_LEADER_MARGIN
                self._promotions += 1
                self.role, self.active_at = ACTIVE, self.address
            self._promoted.set()
            self.database.feed.restarted()  # the previous active one's copies end first
            self.database.data.take_over(time.monotonic())
        log.warning("%s: this process (%s, %s) is the active one now, from batch %d",
                    self.database.name, self.name, self.address, loaded_to)

    def _catch_up(self) -> int:
        """Apply every batch after the last one applied (the log is final: the leadership
        is ours); the last batch's seq."""
        with self.database.lock:
            while True:
                kvs, revision, more = self.etcd.range(
                    log_key(self.space, self._seq + 1), prefix_end(self.space + b"log/"),
                    limit=1000)
                for kv in kvs:
                    for record in json.loads(unb64(kv["value"])):
                        self.database.apply(record)
                    self._seq = seq_of(self.space, unb64(kv["key"]))
                self._revision = revision
                if not more:
                    return self._seq

    def _renew(self) -> None:
        sent = time.monotonic()
        if self.etcd.keep_alive(self._lease) <= 0:
            self._demote("its leadership in etcd ran out")
            return
        with self._lock:
            self._answers_until = sent + ETCD_LEADER_TTL - ETCD_LEADER_MARGIN

    def _find_leader_forever(self) -> None:
        """Forever, while active: send the appends to etcd's raft leader (looked for at each
        promotion, then every ``ETCD_LEADER_CHECK`` seconds; on a thread of its own, since a
        member that hangs holds the look up)."""
        while True:
            self._promoted.wait(ETCD_LEADER_CHECK)
            self._promoted.clear()
            if self.role == ACTIVE:
                self.etcd.prefer_leader()

    def _demote(self, why: str) -> None:
        """Make no change more, drop every connection, forget the state, load it again.

        In that order: a request that made a change did so on a connection open now, which
        is dropped before the log is let go of (till then its ``sync`` waits for the append
        or fails), so no reply tells of a change the log may not hold."""
        with self.database.lock, self._lock:
            if self.role != ACTIVE:
                return
            self.role, self._answers_until = STANDBY, 0.0
        log.warning("%s: this process (%s) stands by now: %s", self.database.name, self.name,
                    why)
        self.database.drop_connections()
        with self._lock:
            self._log = None
        self._try(self._reload)

    def _try(self, step) -> None:
        """Run ``step`` until etcd answers it."""
        while True:
            try:
                step()
                return
            except EtcdError as error:
                log.info("%s: etcd did not answer (%s); trying again", self.database.name,
                         error)
                time.sleep(ETCD_RENEW_EVERY)
