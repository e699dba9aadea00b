"""A client of etcd's JSON gateway (``/v3/...``), standard library only: ``http.client``,
``json`` and ``base64``.

``Etcd`` reaches a cluster through any of its members' URLs (``http://HOST:PORT`` or
``https://`` with a client certificate), moving to the next when one does not answer.
Keys and values are bytes (etcd's gateway carries them base64-encoded); revisions and
lease ids are ints. What the databases keep there, and how, is
``market.storage.etcdlog``'s.
"""
from __future__ import annotations

import base64
import collections
import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from typing import Any, Iterator

from market.errors import EtcdError


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def prefix_end(prefix: bytes) -> bytes:
    """The end of the range of every key starting with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def put(key: bytes, value: bytes, lease: int = 0) -> dict:
    """A put, as an operation of ``Etcd.txn``."""
    request = {"key": b64(key), "value": b64(value)}
    if lease:
        request["lease"] = str(lease)
    return {"request_put": request}


def delete(key: bytes, range_end: bytes | None = None) -> dict:
    """A delete of ``key`` (or of every key up to ``range_end``), as an operation of a txn."""
    request = {"key": b64(key)}
    if range_end is not None:
        request["range_end"] = b64(range_end)
    return {"request_delete_range": request}


def absent(key: bytes) -> dict:
    """A txn's comparison: ``key`` does not exist."""
    return {"key": b64(key), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}


def holds(key: bytes, value: bytes) -> dict:
    """A txn's comparison: ``key`` holds ``value``."""
    return {"key": b64(key), "result": "EQUAL", "target": "VALUE", "value": b64(value)}


class Etcd:
    """A thread-safe client of one etcd cluster (a small pool of connections per member)."""

    def __init__(self, urls: list[str], timeout: float = 2.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.members = [urllib.parse.urlsplit(url) for url in urls]
        if not self.members or any(m.scheme not in ("http", "https") or not m.hostname
                                   for m in self.members):
            raise ValueError(f"expected http://HOST:PORT or https://HOST:PORT, got {urls}")
        self.timeout = timeout
        self.tls = tls
        # Guards _current (the member answering last) and _idle (connections to reuse).
        self._lock = threading.Lock()
        self._current = 0
        self._idle: dict[int, collections.deque] = {i: collections.deque()
                                                     for i in range(len(self.members))}

    @property
    def urls(self) -> list[str]:
        return [member.geturl() for member in self.members]

    def _connect(self, index: int, timeout: float | None) -> http.client.HTTPConnection:
        member = self.members[index]
        if member.scheme == "https":
            return http.client.HTTPSConnection(member.hostname, member.port or 2379,
                                               timeout=timeout, context=self.tls)
        return http.client.HTTPConnection(member.hostname, member.port or 2379,
                                          timeout=timeout)

    def call(self, path: str, body: dict) -> dict:
        """POST ``body`` to ``path`` at the member answering last, else at each other in
        turn; its JSON answer, or ``EtcdError`` when none answers (or one refuses)."""
        with self._lock:
            first = self._current
        failures = []
        for step in range(len(self.members)):
            index = (first + step) % len(self.members)
            try:
                answer = self._post(index, path, body)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{self.members[index].netloc}: {exc or type(exc).__name__}")
                continue
            with self._lock:
                self._current = index
            return answer
        raise EtcdError("no etcd member answered (" + "; ".join(failures) + ")")

    def _post(self, index: int, path: str, body: dict) -> dict:
        with self._lock:
            conn = self._idle[index].pop() if self._idle[index] else None
        if conn is None:
            conn = self._connect(index, self.timeout)
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._idle[index].append(conn)
        answer = json.loads(data) if data else {}
        if response.status != 200:
            message = answer.get("message") or answer.get("error") or data[:200]
            raise EtcdError(f"etcd refused {path}: {message}")
        return answer

    def prefer_leader(self) -> None:
        """Ask the raft leader from now on, if a member says it leads: a follower passes
        each write on to the leader, one hop (and one gateway's JSON) more."""
        for index, row in enumerate(self.status()):
            if row.get("leader"):
                with self._lock:
                    self._current = index
                return

    # -- keys --------------------------------------------------------------------------------

    def get(self, key: bytes) -> tuple[bytes | None, int]:
        """The value of ``key`` (None if there is none) and the store's revision."""
        kvs, revision, _ = self.range(key)
        return (unb64(kvs[0].get("value", "")) if kvs else None), revision

    def range(self, key: bytes, range_end: bytes | None = None, limit: int = 0,
              revision: int = 0) -> tuple[list[dict], int, bool]:
        """The keys from ``key`` (to ``range_end``), at most ``limit`` (0: all), in key
        order; the store's revision; whether more follow."""
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        if limit:
            body["limit"] = limit
        if revision:
            body["revision"] = revision
        answer = self.call("/v3/kv/range", body)
        return (answer.get("kvs", []), int(answer["header"]["revision"]),
                bool(answer.get("more")))

    def txn(self, compare: list[dict], success: list[dict],
            failure: list[dict] | None = None) -> tuple[bool, int]:
        """Apply ``success`` if every comparison holds, else ``failure``; whether they held,
        and the store's revision after."""
        answer = self.call("/v3/kv/txn", {"compare": compare, "success": success,
                                          "failure": failure or []})
        return bool(answer.get("succeeded")), int(answer["header"]["revision"])

    def compact(self, revision: int) -> None:
        """Drop the history of keys before ``revision`` (their current values stay)."""
        try:
            self.call("/v3/kv/compaction", {"revision": str(revision)})
        except EtcdError as error:  # compacted already: nothing to do
            if "compacted" not in str(error):
                raise

    # -- leases ------------------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        return int(self.call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def keep_alive(self, lease: int) -> int:
        """Renew ``lease``; the seconds it has left (0: it has run out)."""
        answer = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(answer.get("result", {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        self.call("/v3/lease/revoke", {"ID": str(lease)})

    # -- watching ------------------------------------------------------------------------------

    def watch(self, key: bytes, range_end: bytes, start_revision: int,
              quiet: float = 10.0) -> Iterator[tuple[int, list[dict]]]:
        """(revision, events) of every change to the keys from ``key`` to ``range_end`` from
        ``start_revision`` on, as they come, at the member answering last. Ends (returns)
        when that member stops answering or is quiet for ``quiet`` seconds (call again from
        the next revision); ``EtcdError`` when the revision was compacted away."""
        with self._lock:
            index = self._current
        conn = self._connect(index, quiet)
        try:
            conn.request("POST", "/v3/watch", json.dumps({"create_request": {
                "key": b64(key), "range_end": b64(range_end),
                "start_revision": str(start_revision)}}),
                {"Content-Type": "application/json"})
            response = conn.getresponse()
            while True:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException, socket.timeout):
                    return
                if not line:
                    return
                result = json.loads(line).get("result", {})
                if result.get("compact_revision") or result.get("canceled"):
                    raise EtcdError(f"etcd compacted the history from revision "
                                    f"{result.get('compact_revision', start_revision)}")
                events = result.get("events", [])
                if events:
                    yield int(result["header"]["revision"]), events
        except (OSError, http.client.HTTPException):
            with self._lock:
                self._current = (index + 1) % len(self.members)
        finally:
            conn.close()

    def status(self) -> list[dict]:
        """Each member's own status (``/v3/maintenance/status``), or why it did not answer:
        ``{"url", "up", "leader", "has_leader", "db_size", "db_size_in_use", "version",
        "alarms", "error"}`` (``leader``: this member is the raft leader; ``has_leader``: it
        knows one; ``db_size``: its database file's bytes, ``db_size_in_use``: those in use,
        the rest what a defragmentation gives back; ``alarms``: etcd's errors, such as
        "etcdserver: mvcc: database space exceeded")."""
        rows = []
        for index, member in enumerate(self.members):
            row: dict[str, Any] = {"url": member.geturl(), "up": False}
            try:
                answer = self._post(index, "/v3/maintenance/status", {})
                row.update(up=True, leader=answer.get("leader") == answer["header"].get(
                    "member_id"), has_leader=bool(answer.get("leader")),
                    db_size=int(answer.get("dbSize", 0)),
                    db_size_in_use=int(answer.get("dbSizeInUse", answer.get("dbSize", 0))),
                    version=answer.get("version"), alarms=list(answer.get("errors", [])))
            except (OSError, http.client.HTTPException, EtcdError, ValueError) as exc:
                row["error"] = str(exc) or type(exc).__name__
            rows.append(row)
        return rows
