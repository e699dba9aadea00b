"""The client side: persistent connections, pooled, to one server.

``Client`` is what the frontends use to reach a database (pool cap, deadlines, a check of
each new connection's ``Hello``) and the CLIs and tests use to reach a frontend; its
``Dialer`` makes its connections (addresses, TLS, the secret handshake, the clock), shared
by every client of that server made from it. ``Health`` logs a link going and coming back.
A request that was sent is never resent silently, except a read (``read``, or an
``InternalOp`` declared as one) or a keyed write.

Exceptions, beyond ``protocol.ApiError`` from the server's own error replies::

    ApiError
      NoAnswer     sent, but no (usable) reply came: it may or may not have been applied
"""
from __future__ import annotations

import argparse
import collections
import logging
import socket
import ssl
import threading
import time
from typing import Callable

from market.config import DEADLINE_SHARE, DEFAULT_DB_TIMEOUT, DEFAULT_HOST, MAX_LINE
from market.errors import NoAnswer, TlsError
from market.net.internal import InternalOp
from market.net.secret import proof as secret_proof
from market.net.sockets import set_socket_timeout
from market.net.tls import TlsStream
from market.net.tls import connect as tls_connect
from protocol import (
    NO_ID_SUFFIX,
    OK_PREFIX,
    ApiError,
    RawResult,
    decode,
    encode,
    encode_value,
    envelope,
    read_line,
    result_of,
)

log = logging.getLogger("market.net.client")
# MSG_PEEK | MSG_DONTWAIT once: an IntFlag's | is a Python call, and this runs per request.
PEEK_NOW = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)


class Connection:
    """One persistent, blocking connection speaking the framing above; with ``tls`` (a
    client ``ssl.SSLContext``), over TLS, the server's certificate verified against the
    context's CA and ``server_hostname`` (default: the host dialled)."""

    def __init__(self, address: tuple[str, int], timeout: float,
                 tls: ssl.SSLContext | None = None, server_hostname: str | None = None) -> None:
        self.timeout = timeout
        self.raw = socket.create_connection(address, timeout=timeout)
        self.sock: socket.socket | TlsStream = self.raw
        try:
            self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Kernel timeouts on a blocking socket: no poll() before each call, and
            # the liveness peek below returns at once.
            self.raw.settimeout(None)
            set_socket_timeout(self.raw, socket.SO_RCVTIMEO, timeout)
            set_socket_timeout(self.raw, socket.SO_SNDTIMEO, timeout)
            if tls is not None:  # the handshake, within the timeout
                self.sock = tls_connect(self.raw, tls, server_hostname or address[0], timeout)
                set_socket_timeout(self.raw, socket.SO_RCVTIMEO, timeout)
        except BaseException:
            self.sock.close()  # over TLS once the handshake is done, both descriptors
            raise
        self.rfile = self.sock.makefile("rb")
        self.answered = False  # a reply has come on it

    def looks_closed(self) -> bool:
        """True if the peer has closed (or sent junk on) an idle connection.

        A non-blocking peek, not ``select()``: that fails for descriptors past 1,024.
        (Over TLS too: the servers send nothing unasked, see ``market.net.tls``.)
        """
        if self.sock is not self.raw and self.sock.pending():
            return True  # junk
        try:
            self.raw.recv(1, PEEK_NOW)  # end of stream, or junk
            return True
        except BlockingIOError:
            return False  # nothing to read: alive and idle
        except OSError:
            return True

    def exchange(self, payload: bytes) -> bytes:
        """Send one request line and return the reply line."""
        sent = time.monotonic()
        self.sock.sendall(payload)
        line = read_line(self.rfile)
        if line is None:  # the kernel's receive timeout ends a read as end of stream does
            if time.monotonic() - sent >= 0.9 * self.timeout:
                raise TimeoutError(f"no reply within {self.timeout:g} s")
            raise ConnectionError("connection closed before the reply")
        self.answered = True
        return line

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()  # over TLS, the stream's descriptor and the socket's
        except OSError:
            pass


class Health:
    """Whether a server answers, as this process's latest exchanges with it found.

    Logged once when it stops answering (WARNING), at most once a minute while it stays
    silent, and once when it answers again (INFO, with the failures between folded into
    that line), however many requests meet it meanwhile. ``state`` is what ``Stats`` shows.
    """

    REMIND_EVERY = 60.0  # seconds between two WARNINGs of one outage

    def __init__(self, what: str) -> None:
        self.what = what
        # Guards the fields below: down_since is None exactly while the server answers.
        self._lock = threading.Lock()
        self.down_since: float | None = None  # time.monotonic() of the first failure
        self._reason = ""
        self._failures = 0  # since the latest WARNING
        self._warned = 0.0

    def failed(self, reason: object) -> None:
        now = time.monotonic()
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = now
            self._reason, self._failures = str(reason), self._failures + 1
            if not first and now - self._warned < self.REMIND_EVERY:
                return
            self._warned, folded, self._failures = now, self._failures - 1, 0
        if first:
            log.warning("cannot reach %s: %s", self.what, reason)
        else:
            log.warning("still cannot reach %s after %.0f s (%d more failures; the latest: "
                        "%s)", self.what, now - self.down_since, folded, reason)

    def answered(self) -> None:
        if self.down_since is None:  # the common case: read without the lock
            return
        with self._lock:
            if self.down_since is None:
                return
            down, failures = time.monotonic() - self.down_since, self._failures
            self.down_since, self._failures = None, 0
        log.info("%s answers again after %.1f s (%d more failures)", self.what, down,
                 failures)

    def state(self) -> dict:
        """``{"up": true}``, or ``{"up": false, "for_s", "reason"}``."""
        with self._lock:
            if self.down_since is None:
                return {"up": True}
            return {"up": False, "for_s": round(time.monotonic() - self.down_since, 1),
                    "reason": self._reason}


class Dialer:
    """How new connections to one server are made: to which address, over what, proving
    what. Every client of that server made from one (``Client.sibling``) shares it, so a
    second connection goes through the same checks as the first.

    ``address`` is the one that answered last of ``addresses`` (``address`` and
    ``alternates``: the processes of one replicated database, contract §16); a new
    connection goes there, else to each other in turn: the first whose ``Hello`` does not
    say it stands by (unless ``standby_too``: status.sh asks each process for its Stats).
    With ``tls`` (a client ``ssl.SSLContext``) the connection is TLS, the server's
    certificate checked against ``server_hostname`` (default: the host of each address);
    ``use_tls`` changes the context for the connections made from then on. When greeted
    (``Hello``), its ``time`` gives ``clock_offset``, how far the server's clock is ahead of
    ours, and ``secret`` is proved with an HMAC of the server's challenge (never sent).
    """

    def __init__(self, address: tuple[str, int], timeout: float,
                 secret: bytes | None = None, tls: ssl.SSLContext | None = None,
                 server_hostname: str | None = None,
                 alternates: tuple[tuple[str, int], ...] = (),
                 standby_too: bool = False) -> None:
        self.address = address
        self.addresses = (address, *alternates)
        self.timeout = timeout
        self.secret = secret
        self.tls = tls
        self.server_hostname = server_hostname
        self.standby_too = standby_too
        self.clock_offset = 0.0  # seconds, as measured by the latest Hello

    def use_tls(self, context: ssl.SSLContext) -> None:
        """Dial with ``context`` from now on (reloaded files); open connections stay."""
        self.tls = context

    def connect(self, greet: bool) -> tuple[Connection, dict]:
        """A new connection and its ``Hello`` (said if ``greet``, a secret is to be proved
        or there are several addresses; else {}); raises what the last address tried
        raised."""
        greet = greet or self.secret is not None or len(self.addresses) > 1
        first = self.addresses.index(self.address)
        failure: Exception | None = None
        for step in range(len(self.addresses)):
            address = self.addresses[(first + step) % len(self.addresses)]
            try:
                conn = Connection(address, self.timeout, self.tls,
                                  self.server_hostname or address[0])
            except (OSError, ConnectionError) as exc:
                failure = exc
                continue
            try:
                hello = self._greet(conn) if greet else {}
                if hello.get("role") == "standby" and not self.standby_too:
                    raise ConnectionError("%s:%d stands by (the active one: %s)" % (
                        *address, hello.get("active")))
            except (OSError, ConnectionError, ApiError) as exc:
                conn.close()
                failure = exc
                continue
            self.address = address
            return conn, hello
        raise failure

    def _greet(self, conn: Connection) -> dict:
        """Say ``Hello``, measure the server's clock from its ``time``, and answer its
        challenge with an HMAC of the shared secret."""
        sent = time.time()
        hello = self.hello(conn)
        if type(hello.get("time")) in (int, float):
            self.clock_offset = hello["time"] - (sent + time.time()) / 2
        if self.secret is not None:
            proof = secret_proof(self.secret, bytes.fromhex(hello.get("challenge", "")))
            result_of(decode(conn.exchange(encode({"op": "Authenticate",
                                                   "args": {"proof": proof}})), exact=False))
        return hello

    @staticmethod
    def hello(conn: Connection) -> dict:
        return result_of(decode(conn.exchange(encode({"op": "Hello"})), exact=False))


class Client:
    """A thread-safe client with a pool of persistent connections to one server.

    A pooled connection that the server has closed while idle is noticed before
    sending and replaced (a read's first try does not look: if its connection turns out
    closed, it is sent again, looking). Once a request has been sent, a failure surfaces as
    ``NoAnswer``; before that, the request is sent once more on a fresh connection
    when that is safe: a read (``read=True``, or an ``InternalOp`` declared
    ``read``) or a keyed write (an ``InternalOp`` declared ``keyed``).

    How a connection is made is its ``Dialer``'s (made from ``address``, ``secret``,
    ``tls``, ``server_hostname``, ``alternates`` and ``standby_too``, or a sibling's); a
    failure of the TLS checks is logged by ``health`` and raised as ``unavailable`` caused
    by the ``TlsError`` that says why. For a frontend's database connections: ``pool_size``
    caps the connections open at once (callers wait for one, up to ``timeout``);
    ``deadlines`` stamps each request with the time after which the database must not
    apply it, ``DEADLINE_SHARE`` of ``timeout`` from now in the server's clock (the
    dialer's ``clock_offset``), so that a database's own ``unavailable`` means nothing was
    changed; ``on_hello(hello, clock_offset, hello_again)`` sees each new connection's
    ``Hello`` before it is used (``hello_again()`` asks once more on it; an ``ApiError``
    it raises refuses the request; the connection is kept).
    """

    def __init__(self, address: tuple[str, int], timeout: float = DEFAULT_DB_TIMEOUT,
                 max_idle: int = 256,
                 secret: bytes | None = None, pool_size: int | None = None,
                 deadlines: bool = False,
                 on_hello: Callable[[dict, float, Callable[[], dict]], None] | None = None,
                 health: Health | None = None, tls: ssl.SSLContext | None = None,
                 server_hostname: str | None = None,
                 alternates: tuple[tuple[str, int], ...] = (),
                 standby_too: bool = False, dialer: Dialer | None = None) -> None:
        self.dialer = dialer or Dialer(address, timeout, secret, tls, server_hostname,
                                       alternates, standby_too)
        self.health = health or Health(",".join("%s:%d" % a for a in self.dialer.addresses))
        self.timeout = timeout
        self.max_idle = max_idle
        self.deadlines = deadlines
        self.pool_size = pool_size
        self.on_hello = on_hello
        # Guards ``_idle`` (idle connections, most recently used last) and ``_open``
        # (connections open, idle or in use): never more than ``pool_size``. Also
        # ``_waits``, how many times a checkout found the pool full and waited, and
        # ``_waiting``, the checkouts waiting now. ``_freed`` is notified whenever a
        # connection comes back or closes while one waits. (``with self._lock``, not the
        # Condition: its ``__enter__`` is a Python call, and this runs twice a request.)
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._idle: collections.deque[Connection] = collections.deque()
        self._open = 0
        self._waits = 0
        self._waiting = 0

    @property
    def address(self) -> tuple[str, int]:
        """The server's address that answered last."""
        return self.dialer.address

    def dedicated(self) -> "Client":
        """A client of its own (one connection, outside this pool) to the same server, for a
        long poll: every new connection it makes goes through the same checks as this one's
        (TLS with this client's context, the secret, deadlines, and ``on_hello``, read
        through this client when called)."""
        def on_hello(hello: dict, clock_offset: float, hello_again: Callable[[], dict]) -> None:
            if self.on_hello is not None:
                self.on_hello(hello, clock_offset, hello_again)
        return self.sibling(max_idle=1, pool_size=1, deadlines=self.deadlines,
                            on_hello=on_hello, health=self.health)

    def sibling(self, **options) -> "Client":
        """Another client of the same server, reached through this one's ``Dialer`` (the
        same addresses, TLS context, host name, secret and clock), with this one's timeout
        and ``options`` (``Client``'s other keyword arguments) for the rest: none of this
        one's ``on_hello``, deadlines or pool unless given."""
        return Client(self.dialer.address, self.timeout, dialer=self.dialer, **options)

    def call(self, op: str | InternalOp, args: dict | None = None, session: str | None = None,
             read: bool = False) -> dict:
        """Send one request and return its ``result``; error replies raise ``ApiError``."""
        return result_of(self._decode(self._send(op, args, session, read)))

    def call_raw(self, op: str | InternalOp, args: dict | None = None,
                 session: str | None = None, read: bool = False) -> RawResult:
        """Like ``call``, but the result stays encoded, for a frontend to pass on as it is.

        A reply our own ``Service`` wrote to a request without an id is spliced,
        not parsed; anything else is decoded and checked as in ``call``.
        """
        line = self._send(op, args, session, read)
        if line.startswith(OK_PREFIX) and line.endswith(NO_ID_SUFFIX):
            return RawResult(line[len(OK_PREFIX):-len(NO_ID_SUFFIX)])
        return RawResult(encode_value(result_of(self._decode(line))))

    def _send(self, op: str | InternalOp, args: dict | None, session: str | None,
              read: bool) -> bytes:
        keyed = False
        if isinstance(op, InternalOp):
            op, read, keyed = op.name, op.read, op.keyed
        return self.exchange(self._payload(op, args, session), read, keyed)

    def _payload(self, op: str, args: dict | None,
                 session: str | None) -> Callable[[], bytes]:
        """The request line, built anew for each attempt (each with its own deadline)."""
        message = envelope(op, args, session)
        if not self.deadlines:
            payload = encode(message)
            return lambda: payload

        def stamped() -> bytes:
            message["deadline"] = round(time.time() + self.dialer.clock_offset
                                        + self.timeout * DEADLINE_SHARE, 3)
            return encode(message)
        return stamped

    def exchange(self, payload: Callable[[], bytes], read: bool = False,
                 keyed: bool = False) -> bytes:
        """Send the request line ``payload()`` makes and return the reply line; a read or
        a keyed write whose reply is lost is sent once more (see the class doc)."""
        for attempt in (1, 2):
            try:
                conn = self._checkout(peek=not read or attempt == 2)
            except ApiError:
                if attempt == 1 or read:
                    raise
                raise self._no_answer(read) from None  # the first send may have been applied
            try:
                line = conn.exchange(payload())
            except ApiError as exc:  # too_large: a bug, since every reply is bounded
                self._discard(conn)
                log.error("%s sent a reply over %d bytes: %s", self._name(), MAX_LINE, exc)
                raise ApiError("internal", "A reply inside the marketplace was too large.") \
                    from None
            except (OSError, ConnectionError) as exc:
                self._discard(conn)
                if isinstance(exc, TlsError) and not conn.answered:
                    # Refused at the handshake: over TLS 1.3 a server's verdict on our
                    # certificate comes with its first record, the request unread.
                    self.health.failed(exc)
                    raise self._unreachable() from exc
                if (read or keyed) and attempt == 1:
                    continue
                self.health.failed(f"no answer: {exc}")
                raise self._no_answer(read) from None
            self._checkin(conn)
            self.health.answered()
            return line
        raise AssertionError("unreachable")

    def _unreachable(self) -> ApiError:
        return ApiError("unavailable", f"{self.peer} is unreachable; nothing was changed; "
                                       "try again.")

    def _no_answer(self, read: bool) -> NoAnswer:
        if read:
            return NoAnswer("unavailable", f"{self.peer} did not answer in time; "
                                           "nothing was changed; try again.")
        return NoAnswer("deadline_exceeded", f"{self.peer} did not answer in time; the "
                                             "change may or may not have been made.")

    exact = False  # decode fractions as Decimal (True) or float
    peer = "The marketplace's storage"  # what the messages below call the server

    def _decode(self, line: bytes) -> dict:
        try:
            return decode(line, exact=self.exact)
        except ApiError:
            log.warning("%s sent a garbled reply", self._name())
            raise NoAnswer("unavailable", f"{self.peer} sent a garbled reply; "
                                          "try again.") from None

    def _checkout(self, peek: bool = True) -> Connection:
        """An idle live connection, else a new one if the pool has room, else wait for either.

        Without ``peek``, an idle connection is taken without looking whether the server
        closed it (for a read's first try: a closed one fails and the read is sent again,
        peeking). A peek is a system call, and every system call hands the GIL over: under
        load it cost a frontend more than the rest of taking a connection.
        """
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while True:
                while self._idle:
                    conn = self._idle.pop()
                    if not peek or not conn.looks_closed():
                        return conn
                    conn.close()
                    self._open -= 1
                if self.pool_size is None or self._open < self.pool_size:
                    self._open += 1
                    break
                self._waits += 1
                self._waiting += 1
                freed = self._freed.wait(deadline - time.monotonic())
                self._waiting -= 1
                if not freed:
                    raise ApiError("unavailable", "The server is too busy right now; nothing "
                                                  "was changed; try again.")
        try:
            conn, hello = self.dialer.connect(greet=self.on_hello is not None)
        except (OSError, ConnectionError, ApiError) as exc:
            self._closed()
            self.health.failed(exc)
            raise self._unreachable() from (exc if isinstance(exc, TlsError) else None)
        if self.on_hello is not None:
            try:
                self.on_hello(hello, self.dialer.clock_offset, lambda: Dialer.hello(conn))
            except ApiError:
                self._checkin(conn)
                raise
        return conn

    def _checkin(self, conn: Connection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                if self._waiting:
                    self._freed.notify()
                return
        self._discard(conn)

    def _discard(self, conn: Connection) -> None:
        conn.close()
        self._closed()

    def _closed(self) -> None:
        with self._lock:
            self._open -= 1
            if self._waiting:
                self._freed.notify()

    def pool_stats(self) -> dict[str, int | None]:
        """For ``Stats``: the cap (None: no cap), connections open and in use, and how
        many times a request found every connection in use and waited (a request woken
        only to find them taken again waits, and counts, once more)."""
        with self._lock:
            return {"size": self.pool_size, "open": self._open,
                    "in_use": self._open - len(self._idle), "waits": self._waits}

    def _name(self) -> str:
        return "%s:%d" % self.address

    def close(self) -> None:
        while True:
            with self._lock:
                if not self._idle:
                    return
                conn = self._idle.pop()
            self._discard(conn)



def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' (or '[v6]:PORT') -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not (sep and port.isascii() and port.isdigit() and int(port) <= 65535):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or DEFAULT_HOST, int(port)


def parse_addresses(text: str) -> list[tuple[str, int]]:
    """'HOST:PORT[,HOST:PORT...]' -> [(host, port), ...]: the processes of one database."""
    return [parse_address(part.strip()) for part in text.split(",") if part.strip()] or \
        [parse_address(text)]
