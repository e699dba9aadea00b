"""The marketplace's one shared wire module.

Everything the six parts have in common lives here, once:

* framing: one JSON object per line, UTF-8, at most ``MAX_LINE`` bytes;
* the envelope: ``{"op", "args", "session", "id"}`` in, ``{"ok", "result"|"error", "id"}`` out;
* ``ApiError``, the one exception type, carrying a spec error code;
* declarative argument validation (``Str``, ``Int``, ``Price`` ... in a dict per op);
* ``Service`` + ``Server``: a ``ThreadingTCPServer`` that dispatches ops from a table;
* ``Client``: a thread-safe pool of persistent connections;
* ``service_main``: flags, environment variables, logging and the ready line.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import ctypes
import getpass
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import resource
import secrets
import shlex
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterator

MAX_LINE = 1 << 20  # bytes of JSON on one line, not counting the newline
LISTEN_BACKLOG = 1024
STOP_GRACE = 3.0  # seconds a stopping server gives requests in flight to finish
DEFAULT_IDLE_TIMEOUT = 600.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_DB_POOL = 64  # connections a frontend keeps at most to each database
# A database must apply a request within this share of the frontend's wait;
# the rest leaves time for the reply to arrive before the frontend gives up.
DEADLINE_SHARE = 0.75

log = logging.getLogger("marketplace")
log.addHandler(logging.NullHandler())  # the CLIs log nothing; services configure logging

# -- errors -----------------------------------------------------------------

ERROR_CODES = frozenset({
    "bad_request", "unknown_op", "auth_failed", "invalid_session", "forbidden",
    "not_found", "conflict", "too_large", "unavailable", "internal",
})


class ApiError(Exception):
    """A failure the client is told about: a spec error code and one human sentence."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message}


# -- framing ----------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


# Built once: json.dumps/loads with options would build a new coder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                            default=lambda value: _exact_default(value))
_EXACT_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)
_FLOAT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@dataclass
class RawResult:
    """A result that is already JSON (``json``, bytes): replies carry it unparsed."""

    json: bytes


# A success reply as encode() writes it, split around its result, when id is null.
_OK_PREFIX = b'{"ok":true,"result":'
_NO_ID_SUFFIX = b',"id":null}\n'


def encode(message: dict) -> bytes:
    """One message as one line of compact UTF-8 JSON."""
    return (_encode_text(message) + "\n").encode()


def encode_value(value: Any) -> bytes:
    """Any JSON value as compact UTF-8 JSON, without the newline."""
    return _encode_text(value).encode()


class ExactDollars:
    """An amount too large for a float to show to the cent; encoded as exact JSON text."""

    def __init__(self, cents: int) -> None:
        self.cents = cents

    def text(self) -> str:
        whole, cents = divmod(abs(self.cents), 100)
        return f"{'-' if self.cents < 0 else ''}{whole}.{cents:02d}"


# ``ExactDollars`` is encoded as a string holding this mark, then the quotes and
# marks are cut away. The mark is random per process, so no stored string can forge it.
_EXACT_MARK = "\u0000" + os.urandom(8).hex()
_EXACT_PATTERN = re.compile(re.escape(json.dumps(_EXACT_MARK)[:-1]) + r'(-?[0-9]+\.[0-9]{2})"')


def _exact_default(value: Any) -> Any:
    if isinstance(value, ExactDollars):
        return _EXACT_MARK + value.text()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _encode_text(value: Any) -> str:
    text = _ENCODER.encode(value)
    if _EXACT_MARK[1:] in text:
        text = _EXACT_PATTERN.sub(r"\1", text)
    return text


EXACT_FLOAT_CENTS = 10 ** 15  # below this, cents / 100 as a float prints exactly


def dollars(cents: int) -> float | int | ExactDollars:
    """Exact cents -> the JSON number clients see (17.5 for 1750), exact at any size."""
    if abs(cents) < EXACT_FLOAT_CENTS:
        return cents / 100
    if cents % 100 == 0:
        return cents // 100
    return ExactDollars(cents)


def decode(line: bytes, exact: bool = True) -> dict:
    """Parse one line (newline included or not) into a JSON object.

    With ``exact`` (requests), numbers with a fraction or exponent become
    ``Decimal`` so prices stay exact; replies use floats. NaN and Infinity are
    refused.
    """
    decoder = _EXACT_DECODER if exact else _FLOAT_DECODER
    try:
        text = line.decode("utf-8")
        message = decoder.decode(text)
        if "\\u" in text and _has_lone_surrogate(message):
            raise ApiError("bad_request", "The message holds a \\u escape of a lone surrogate.")
    except UnicodeDecodeError:
        raise ApiError("bad_request", "The message is not valid UTF-8.") from None
    except (ValueError, RecursionError):
        raise ApiError("bad_request", "The message is not valid JSON.") from None
    if not isinstance(message, dict):
        raise ApiError("bad_request", "The message must be a JSON object.")
    return message


def read_line(rfile) -> bytes | None:
    """Read one framed line; ``None`` at end of stream (a half line is dropped).

    Raises ``ApiError('too_large')`` when the line exceeds ``MAX_LINE``; the
    caller must then close the connection, since the rest of the line is unread.
    """
    line = rfile.readline(MAX_LINE + 2)
    if line.endswith(b"\n"):
        if len(line) - 1 > MAX_LINE:
            raise too_large()
        return line
    if len(line) > MAX_LINE:
        raise too_large()
    return None


def too_large() -> ApiError:
    return ApiError("too_large", f"The message is longer than {MAX_LINE} bytes.")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """True if a string in ``value`` holds a lone UTF-16 surrogate (from a ``\\ud800``
    escape): no UTF-8 reply could carry it, so it must not be stored or echoed."""
    if isinstance(value, str):
        return not value.isascii() and _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


MAX_ECHO_DEPTH = 100  # nesting levels of a value echoed back (``id``)


def json_safe(value: Any, depth: int = 0) -> Any:
    """``Decimal`` -> float, recursively, for echoing values back (``id``)."""
    if depth > MAX_ECHO_DEPTH:
        raise ApiError("bad_request", "A value in the message is nested too deeply.")
    if isinstance(value, Decimal):
        if not math.isfinite(float(value)):
            raise ApiError("bad_request", "A number in the message is too large.")
        return float(value)
    if isinstance(value, dict):
        return {k: json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v, depth + 1) for v in value]
    return value


# -- validation -------------------------------------------------------------

class Validator:
    """Checks one argument and returns its normalised value (or raises bad_request)."""

    optional = False
    default: Any = None

    def __call__(self, name: str, value: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def fail(name: str, what: str) -> ApiError:
        return ApiError("bad_request", f"'{name}' must be {what}.")


@dataclass
class Optional(Validator):
    """Wraps a validator: the field may be absent, and then takes ``default``."""

    inner: Validator
    default: Any = None
    optional = True

    def __call__(self, name: str, value: Any) -> Any:
        return self.inner(name, value)


@dataclass
class Str(Validator):
    min_len: int = 1
    max_len: int = 32
    no_control: bool = True
    no_space: bool = False

    def __call__(self, name: str, value: Any) -> str:
        what = f"a string of {self.min_len} to {self.max_len} characters"
        if not isinstance(value, str) or not self.min_len <= len(value) <= self.max_len:
            raise self.fail(name, what)
        if self.no_control and any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
            raise self.fail(name, what + " without control characters")
        if self.no_space and any(c.isspace() for c in value):
            raise self.fail(name, what + " without whitespace")
        return value


@dataclass
class Int(Validator):
    low: int = 0
    high: int = 2 ** 53

    def __call__(self, name: str, value: Any) -> int:
        if type(value) is not int or not self.low <= value <= self.high:
            raise self.fail(name, f"an integer from {self.low} to {self.high}")
        return value


@dataclass
class OneOf(Validator):
    choices: tuple

    def __call__(self, name: str, value: Any) -> str:
        if value not in self.choices or not isinstance(value, str):
            raise self.fail(name, "one of " + ", ".join(repr(c) for c in self.choices))
        return value


CENT = Decimal("0.01")


class Price(Validator):
    """A JSON number > 0 and <= 1,000,000 with at most two decimals -> int cents."""

    def __call__(self, name: str, value: Any) -> int:
        what = "a number above 0 and at most 1000000 with at most two decimal places"
        if type(value) is int:
            value = Decimal(value)
        # Compare, never round: Decimal arithmetic rounds to 28 digits, so
        # 0.0100000000000000000000000000001 * 100 would pass as a whole number.
        if (not isinstance(value, Decimal) or not value.is_finite()
                or not 0 < value <= 1_000_000 or value != value.quantize(CENT)):
            raise self.fail(name, what)
        return int(value * 100)


@dataclass
class Keywords(Validator):
    """0-5 keywords of 1-8 non-space characters; case-insensitive duplicates dropped."""

    max_count: int = 5

    def __call__(self, name: str, value: Any) -> list[str]:
        if not isinstance(value, list) or len(value) > self.max_count:
            raise self.fail(name, f"a list of at most {self.max_count} keywords")
        word = Str(1, 8, no_space=True)
        seen, kept = set(), []
        for i, item in enumerate(value):
            word(f"{name}[{i}]", item)
            if item.lower() not in seen:
                seen.add(item.lower())
                kept.append(item)
        return kept


@dataclass
class Hex(Validator):
    """``size`` bytes written as hex text -> ``bytes``."""

    size: int

    def __call__(self, name: str, value: Any) -> bytes:
        if isinstance(value, str) and len(value) == 2 * self.size:
            try:
                return bytes.fromhex(value)
            except ValueError:
                pass
        raise self.fail(name, f"{self.size} bytes as hex text")


@dataclass
class Record(Validator):
    """A JSON object validated against its own schema (for internal messages)."""

    schema: dict

    def __call__(self, name: str, value: Any) -> dict:
        return validate(self.schema, value, name)


@dataclass
class ListOf(Validator):
    """A list of at most ``max_count`` values, each checked by ``element``."""

    element: Validator
    max_count: int = 10_000

    def __call__(self, name: str, value: Any) -> list:
        if not isinstance(value, list) or len(value) > self.max_count:
            raise self.fail(name, f"a list of at most {self.max_count} entries")
        return [self.element(f"{name}[{i}]", entry) for i, entry in enumerate(value)]


def validate(schema: dict[str, Validator], args: Any, where: str = "args") -> dict:
    """Check ``args`` against ``schema``: every field known, present and valid."""
    if not isinstance(args, dict):
        raise ApiError("bad_request", f"'{where}' must be a JSON object.")
    unknown = args.keys() - schema.keys()
    if unknown:
        raise ApiError("bad_request", f"Unknown field '{sorted(unknown)[0]}' in {where}.")
    clean = {}
    for name, check in schema.items():
        if name in args:
            clean[name] = check(name, args[name])
        elif check.optional:
            clean[name] = check.default
        else:
            raise ApiError("bad_request", f"Missing field '{name}' in {where}.")
    return clean


# Fields shared by several ops.
USERNAME = Str(1, 32)
PASSWORD = Str(1, 128, no_control=False)
ITEM_ID = Int(1)
QUANTITY = Int(1, 1_000_000)
ROLE = OneOf(("buyer", "seller"))
VOTE = OneOf(("up", "down"))
PURCHASE_ID = Str(1, 64)


# -- server -----------------------------------------------------------------

@dataclass
class Op:
    """One entry of a service's op table."""

    handler: Callable[..., dict]
    schema: dict[str, Validator] = field(default_factory=dict)
    needs_session: bool = True


CONTRACT_VERSION = "2026-11-25"
ENVELOPE_FIELDS = frozenset({"op", "args", "session", "id"})


@dataclass
class Peer:
    """What a service knows about one connection: whether it proved the deployment's secret."""

    authenticated: bool = False
    challenge: bytes = b""


class Service:
    """Base of every service: an op table plus hooks. Subclasses add to ``ops``.

    A handler is called as ``handler(request, **args)``: ``request`` is the
    ``Request`` (op, session token, deadline, connection) and ``args`` are validated.
    Every service answers ``Hello`` with what it is (``kind``).
    """

    name = "service"
    kind = "service"  # what Hello says: "seller", "buyer", "product_db", "customer_db"
    envelope_fields = ENVELOPE_FIELDS

    def __init__(self) -> None:
        self.ops: dict[str, Op] = {"Hello": Op(self.hello, needs_session=False)}

    def start(self) -> None:
        """Called once the server is bound, before serving (start threads here)."""

    def hello(self, request: "Request") -> dict:
        return {"service": self.kind, "version": CONTRACT_VERSION}

    def respond(self, line: bytes, peer: Peer | None = None) -> bytes:
        """Turn one request line into its encoded reply line; never raises."""
        message: Any = None
        request_id = None
        try:
            message = decode(line)
            request_id = json_safe(message.get("id"))
            result = self.dispatch(message, peer or Peer())
            if isinstance(result, RawResult):
                reply = b"".join((_OK_PREFIX, result.json, b',"id":',
                                  encode_value(request_id), b"}\n"))
            else:
                reply = encode({"ok": True, "result": result, "id": request_id})
            log.debug("%s ok", _op_name(message))
            return reply
        except ApiError as error:
            log.warning("%s failed: %s", _op_name(message), error.code)
            return encode(error_reply(error, request_id))
        except Exception:
            log.exception("internal error in %s", _op_name(message))
            return encode(error_reply(ApiError("internal", "The server hit an internal error."),
                                      request_id))

    def dispatch(self, message: dict, peer: Peer | None = None) -> Any:
        op_name = message.get("op")
        if not isinstance(op_name, str):
            raise ApiError("bad_request", "'op' must be a string.")
        unknown = message.keys() - self.envelope_fields
        if unknown:
            raise ApiError("bad_request", f"Unknown field '{sorted(unknown)[0]}' in the message.")
        request = Request(op_name, message.get("session"), peer=peer or Peer())
        self.admit(request, message)
        op = self.ops.get(op_name)
        if op is None:
            raise ApiError("unknown_op", f"There is no op '{op_name}' on the {self.name}.")
        args = validate(op.schema, message.get("args", {}))
        if request.session is not None and not isinstance(request.session, str):
            raise ApiError("bad_request", "'session' must be a string.")
        if op.needs_session and not request.session:
            raise ApiError("invalid_session", "This op needs a session token; log in first.")
        return op.handler(request, **args)

    def admit(self, request: "Request", message: dict) -> None:
        """Called before the op is looked up: refuse the request here (databases
        check the caller's proof of the secret and the request's deadline)."""


def _op_name(message: Any) -> str:
    """The op for a log line: at most 64 characters, escaped so it cannot forge lines."""
    if not isinstance(message, dict):
        return "request"
    return str(message.get("op"))[:64].encode("unicode_escape").decode("ascii")


@dataclass
class Request:
    op: str
    session: str | None
    deadline: float | None = None  # wall-clock time after which nothing may be applied
    peer: Peer = field(default_factory=Peer)

    def check_deadline(self) -> None:
        """Refuse to go on once the caller has stopped waiting (so it was told: nothing changed)."""
        if self.deadline is not None and time.time() > self.deadline:
            raise ApiError("unavailable", "The request arrived too late and was not applied.")


RECV_SIZE = 1 << 16


def set_socket_timeout(sock: socket.socket, option: int, seconds: float) -> None:
    """Let a blocking ``recv`` (SO_RCVTIMEO) or ``send`` (SO_SNDTIMEO) fail after ``seconds``.

    A kernel timeout, unlike ``settimeout``, costs no ``poll`` before every call.
    """
    seconds = max(seconds, 0.001)  # 0 would mean: wait forever
    sock.setsockopt(socket.SOL_SOCKET, option,
                    struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000)))


class LineReader:
    """Reads request lines from one blocking server socket, within two time limits.

    Waiting for a line to start may take ``idle_timeout``; once it has started,
    the line must be complete within ``read_timeout``, so a client trickling a
    byte a second cannot hold a thread. The receive timeout is changed only
    while a line is incomplete: a line that arrives whole costs one ``recv``.
    """

    def __init__(self, sock: socket.socket, idle_timeout: float, read_timeout: float) -> None:
        self.sock = sock
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self._buffer = bytearray()  # received bytes not yet returned as lines
        set_socket_timeout(sock, socket.SO_RCVTIMEO, idle_timeout)

    def read_line(self) -> bytes | None:
        """The next line, newline included; ``None`` at end of stream or on a timeout.

        Raises ``ApiError('too_large')`` past ``MAX_LINE``; the caller must then
        close the connection, since the rest of the line is unread.
        """
        buffer = self._buffer
        scanned = 0
        deadline = None
        while (end := buffer.find(b"\n", scanned)) < 0:
            scanned = len(buffer)
            if scanned > MAX_LINE:
                raise too_large()
            if buffer:  # a line has started: it must be complete by the deadline
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.read_timeout
                if now >= deadline:
                    return None
                set_socket_timeout(self.sock, socket.SO_RCVTIMEO, deadline - now)
            try:
                chunk = self.sock.recv(RECV_SIZE)
            except OSError:  # timed out or reset
                return None
            if not chunk:
                return None
            buffer += chunk
        if deadline is not None:
            set_socket_timeout(self.sock, socket.SO_RCVTIMEO, self.idle_timeout)
        if end > MAX_LINE:
            raise too_large()
        line = bytes(buffer[:end + 1])
        del buffer[:end + 1]
        return line


class RequestHandler(socketserver.BaseRequestHandler):
    """Serves one connection: many requests, one reply line each, in order."""

    server: "Server"

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A client that stops reading its replies is dropped like a slow sender.
        set_socket_timeout(self.request, socket.SO_SNDTIMEO, self.server.read_timeout)
        self.lines = LineReader(self.request, self.server.idle_timeout,
                                self.server.read_timeout)
        self.peer = Peer()

    def handle(self) -> None:
        while True:
            try:
                line = self.lines.read_line()
            except ApiError as error:  # too_large: the rest of the line is unread, so close
                log.warning("request failed: %s", error.code)
                self._send(encode(error_reply(error, None)))
                return
            if line is None or not self._send(self.server.service.respond(line, self.peer)):
                return

    def _send(self, reply: bytes) -> bool:
        try:
            self.request.sendall(reply)
            return True
        except OSError:
            return False


def error_reply(error: ApiError, request_id: Any) -> dict:
    return {"ok": False, "error": error.to_json(), "id": request_id}


class Server(socketserver.ThreadingTCPServer):
    """A threading TCP server for one ``Service``: a thread per connection, up to a cap."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG
    block_on_close = False

    def __init__(self, address: tuple[str, int], service: Service,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 read_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.service = service
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        # Guards ``_open``, the connections being served: never more than
        # ``max_connections``; one leaves when its handler thread ends.
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, RequestHandler)

    def process_request(self, request, client_address) -> None:
        """Serve the connection on a thread of its own, or refuse it when at the cap."""
        with self._lock:
            admitted = len(self._open) < self.max_connections
            if admitted:
                self._open.add(request)
        if not admitted:
            self.refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # no thread could be started
            self._connection_ended(request)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_ended(request)

    def _connection_ended(self, request: socket.socket) -> None:
        with self._lock:
            self._open.discard(request)

    def drain(self, grace: float) -> None:
        """Let every connection finish the request it is on, then end (for a clean stop).

        Shutting the read side makes each handler's next read see end of
        stream, while replies already being computed can still be sent.
        """
        with self._lock:
            open_now = list(self._open)
        for request in open_now:
            try:
                request.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while self._open and time.monotonic() < deadline:
            time.sleep(0.02)

    def refuse(self, request: socket.socket, client_address) -> None:
        """Answer one ``unavailable`` line and close, without a thread."""
        log.warning("refused %s: %d connections are open", client_address, self.max_connections)
        error = ApiError("unavailable", "The server has too many connections; retry later.")
        try:
            request.setblocking(False)
            request.send(encode(error_reply(error, None)))
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        log.exception("error serving %s", client_address)


# -- client -----------------------------------------------------------------

class Connection:
    """One persistent, blocking connection speaking the framing above."""

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Kernel timeouts on a blocking socket: no poll() before each call, and
        # the liveness peek below returns at once.
        self.sock.settimeout(None)
        set_socket_timeout(self.sock, socket.SO_RCVTIMEO, timeout)
        set_socket_timeout(self.sock, socket.SO_SNDTIMEO, timeout)
        self.rfile = self.sock.makefile("rb")

    def looks_closed(self) -> bool:
        """True if the peer has closed (or sent junk on) an idle connection.

        A non-blocking peek, not ``select()``: that fails for descriptors past 1,024.
        """
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # end of stream, or junk
            return True
        except BlockingIOError:
            return False  # nothing to read: alive and idle
        except OSError:
            return True

    def exchange(self, payload: bytes) -> bytes:
        """Send one request line and return the reply line."""
        self.sock.sendall(payload)
        line = read_line(self.rfile)
        if line is None:
            raise ConnectionError("connection closed before the reply")
        return line

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


class NoAnswer(ApiError):
    """``unavailable`` because no reply came: the request may or may not have been applied
    (a database that did answer ``unavailable`` applied nothing)."""


class Client:
    """A thread-safe client with a pool of persistent connections to one server.

    A pooled connection that the server has closed while idle is noticed before
    sending and replaced. Once a request has been sent, a failure is never
    retried silently: it surfaces as ``NoAnswer`` (``unavailable``), unless the
    caller marks the op ``idempotent`` (a read), which is retried once.

    For a frontend's database connections: ``secret`` proves the deployment's
    secret on each new connection (see ``Database.authenticate``); ``pool_size``
    caps the connections open at once (callers wait for one, up to ``timeout``);
    ``deadlines`` stamps each request with the time after which the database
    must not apply it, ``DEADLINE_SHARE`` of ``timeout`` from now, so that an
    ``unavailable`` from a timeout means nothing was changed.
    """

    def __init__(self, address: tuple[str, int], timeout: float = 5.0, max_idle: int = 256,
                 secret: bytes | None = None, pool_size: int | None = None,
                 deadlines: bool = False) -> None:
        self.address = address
        self.timeout = timeout
        self.max_idle = max_idle
        self.secret = secret
        self.deadlines = deadlines
        self.pool_size = pool_size
        # Guards ``_idle`` (idle connections, most recently used last) and ``_open``
        # (connections open, idle or in use): never more than ``pool_size``.
        # Notified whenever a connection comes back or closes.
        self._pool = threading.Condition(threading.Lock())
        self._idle: collections.deque[Connection] = collections.deque()
        self._open = 0

    def call(self, op: str, args: dict | None = None, session: str | None = None,
             idempotent: bool = False) -> dict:
        """Send one request and return its ``result``; error replies raise ``ApiError``."""
        return _result(self._decode(self.exchange(self._payload(op, args, session), idempotent)))

    def call_raw(self, op: str, args: dict | None = None, session: str | None = None,
                 idempotent: bool = False) -> RawResult:
        """Like ``call``, but the result stays encoded, for a frontend to pass on as it is.

        A reply our own ``Service`` wrote to a request without an id is spliced,
        not parsed; anything else is decoded and checked as in ``call``.
        """
        line = self.exchange(self._payload(op, args, session), idempotent)
        if line.startswith(_OK_PREFIX) and line.endswith(_NO_ID_SUFFIX):
            return RawResult(line[len(_OK_PREFIX):-len(_NO_ID_SUFFIX)])
        return RawResult(encode_value(_result(self._decode(line))))

    def request(self, message: dict, idempotent: bool = False) -> dict:
        """Send a message and return the whole reply envelope."""
        return self._decode(self.exchange(encode(message), idempotent))

    def _payload(self, op: str, args: dict | None,
                 session: str | None) -> Callable[[], bytes]:
        """The request line, built anew for each attempt (each with its own deadline)."""
        message = _message(op, args, session)
        if not self.deadlines:
            payload = encode(message)
            return lambda: payload

        def stamped() -> bytes:
            message["deadline"] = round(time.time() + self.timeout * DEADLINE_SHARE, 3)
            return encode(message)
        return stamped

    def exchange(self, payload: bytes | Callable[[], bytes], idempotent: bool = False) -> bytes:
        """Send one request line and return the reply line; see the class doc on retries."""
        for attempt in (1, 2):
            conn = self._checkout()
            try:
                line = conn.exchange(payload() if callable(payload) else payload)
            except (OSError, ConnectionError, ApiError) as exc:
                self._discard(conn)
                if idempotent and attempt == 1:
                    continue
                log.warning("%s did not answer: %s", self._name(), exc)
                raise NoAnswer("unavailable", "The marketplace's storage did not answer in "
                                              "time; try again.") from None
            self._checkin(conn)
            return line
        raise AssertionError("unreachable")

    exact = False  # decode fractions as Decimal (True) or float

    def _decode(self, line: bytes) -> dict:
        try:
            return decode(line, exact=self.exact)
        except ApiError:
            log.warning("%s sent a garbled reply", self._name())
            raise NoAnswer("unavailable", "The marketplace's storage sent a garbled reply; "
                                          "try again.") from None

    def _checkout(self) -> Connection:
        """An idle live connection, else a new one if the pool has room, else wait for either."""
        deadline = time.monotonic() + self.timeout
        with self._pool:
            while True:
                while self._idle:
                    conn = self._idle.pop()
                    if not conn.looks_closed():
                        return conn
                    conn.close()
                    self._open -= 1
                if self.pool_size is None or self._open < self.pool_size:
                    self._open += 1
                    break
                if not self._pool.wait(deadline - time.monotonic()):
                    raise ApiError("unavailable", "The server is too busy right now; nothing "
                                                  "was changed; try again.")
        try:
            conn = Connection(self.address, self.timeout)
            if self.secret is not None:
                self._authenticate(conn)
            return conn
        except (OSError, ConnectionError, ApiError) as exc:
            self._closed()
            log.warning("cannot reach %s: %s", self._name(), exc)
            raise ApiError("unavailable", "The marketplace's storage is unreachable; nothing "
                                          "was changed; try again.") from None

    def _authenticate(self, conn: Connection) -> None:
        """Answer the server's challenge with an HMAC of the shared secret (never the secret)."""
        hello = _result(decode(conn.exchange(encode({"op": "Hello"})), exact=False))
        proof = auth_proof(self.secret, bytes.fromhex(hello.get("challenge", "")))
        _result(decode(conn.exchange(encode({"op": "Authenticate", "args": {"proof": proof}})),
                       exact=False))

    def _checkin(self, conn: Connection) -> None:
        with self._pool:
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                self._pool.notify()
                return
        self._discard(conn)

    def _discard(self, conn: Connection) -> None:
        conn.close()
        self._closed()

    def _closed(self) -> None:
        with self._pool:
            self._open -= 1
            self._pool.notify()

    def _name(self) -> str:
        return "%s:%d" % self.address

    def close(self) -> None:
        while True:
            with self._pool:
                if not self._idle:
                    return
                conn = self._idle.pop()
            self._discard(conn)


def auth_proof(secret: bytes, challenge: bytes) -> str:
    """What proves knowledge of ``secret`` for one ``challenge``: HMAC-SHA256, hex."""
    return hmac.new(secret, challenge, hashlib.sha256).hexdigest()


def _message(op: str, args: dict | None, session: str | None) -> dict:
    message: dict[str, Any] = {"op": op}
    if args:
        message["args"] = args
    if session is not None:
        message["session"] = session
    return message


def _result(reply: dict) -> dict:
    """The ``result`` of a reply envelope, or its error raised as ``ApiError``."""
    if reply.get("ok"):
        return reply.get("result", {})
    error = reply.get("error") or {}
    code = error.get("code")
    raise ApiError(code if code in ERROR_CODES else "internal",
                   str(error.get("message", "The server failed.")))


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' (or '[v6]:PORT') -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


# -- running a service ------------------------------------------------------

def env_default(parser: argparse.ArgumentParser, flag: str, env: str, default: Any,
                help: str, **kwargs: Any) -> None:
    """Add ``flag`` whose default comes from environment variable ``env``."""
    value = os.environ.get(env, default)
    parser.add_argument(flag, default=value, help=f"{help} (env {env}, default {default})",
                        **kwargs)


def service_parser(description: str, env_prefix: str, port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    env_default(parser, "--host", f"{env_prefix}_HOST", "127.0.0.1", "address to bind")
    env_default(parser, "--port", f"{env_prefix}_PORT", port, "port to listen on (0: any free)",
                type=int)
    env_default(parser, "--idle-timeout", "IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT,
                "seconds an idle connection is kept open", type=float)
    env_default(parser, "--read-timeout", "READ_TIMEOUT", DEFAULT_READ_TIMEOUT,
                "seconds a client may take to finish sending a request line, or to take "
                "a reply, before the connection is closed", type=float)
    env_default(parser, "--max-connections", "MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS,
                "connections served at once; more get 'unavailable' and are closed", type=int)
    env_default(parser, "--log-level", "LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR")
    env_default(parser, "--secret-file", "MARKET_SECRET_FILE", "",
                "file holding the deployment's shared secret: databases serve only "
                "connections that prove they know it, frontends prove it")
    return parser


def read_secret(path: str) -> bytes | None:
    """The deployment secret in ``path`` (surrounding whitespace dropped); None without a path."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except OSError as exc:
        sys.exit(f"cannot read the secret file {path}: {exc.strerror}")
    if len(secret) < 16:
        sys.exit(f"the secret file {path} must hold at least 16 bytes")
    return secret


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def database_parser(description: str, env_prefix: str, port: int) -> argparse.ArgumentParser:
    parser = service_parser(description, env_prefix, port)
    env_default(parser, "--data-dir", f"{env_prefix}_DATA_DIR", "",
                "keep a journal and snapshots here (default: memory only)")
    return parser


def allow_open_files(count: int) -> None:
    """Raise the soft limit on open files to ``count``, as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(service: Service, args: argparse.Namespace) -> None:
    """Bind, print the ready line, serve until SIGTERM/SIGINT, then close cleanly."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    allow_open_files(2 * args.max_connections + 1024)  # clients, database pools, journals
    try:
        server = Server((args.host, args.port), service, args.idle_timeout, args.read_timeout,
                        args.max_connections)
    except OSError as exc:
        sys.exit(f"{service.name}: cannot listen on {args.host}:{args.port}: {exc.strerror}")
    service.start()
    host, port = server.server_address[:2]
    print(f"{service.name} ready on {host}:{port}", flush=True)

    def stop(signum, frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()  # no new connections from here on
        server.drain(STOP_GRACE)
        log.info("%s stopped", service.name)



# -- durability (optional: databases started with --data-dir) ---------------

class JournalError(Exception):
    """The data directory cannot be loaded; the message names the file and line."""


class Journal:
    """An append-only journal of JSON lines with group commit, plus snapshots.

    ``DIR/snapshot.json`` holds ``{"generation": N, "state": ...}``, the whole
    state at one moment, and ``DIR/journal-N.jsonl`` every record since. The
    owner calls ``append`` while holding its own state lock (so records are in
    the order the changes happened) and ``wait`` after releasing it: one
    ``fsync`` covers every record appended so far, so concurrent writers share
    it (group commit).
    """

    def __init__(self, directory: str, snapshot_every: int = 100_000) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)  # it holds hashes and tokens
        self.directory = directory
        self.snapshot_path = os.path.join(directory, "snapshot.json")
        self.snapshot_every = snapshot_every
        self.generation = 0
        self._since_snapshot = 0
        self._appended = 0  # records appended (under the owner's lock)
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
        """The snapshot's state (or None) and the journal's records since.

        A torn last line (a crash mid-write) is cut off; any other damage
        raises ``JournalError`` naming the file and line.
        """
        state = None
        if os.path.exists(self.snapshot_path):
            try:
                with open(self.snapshot_path, "rb") as f:
                    snapshot = json.loads(f.read())
                self.generation, state = int(snapshot["generation"]), snapshot["state"]
            except (ValueError, KeyError, TypeError) as exc:
                raise JournalError(f"{self.snapshot_path}: corrupt snapshot ({exc})") from None
        path = self._journal_path(self.generation)
        records: list[dict] = []
        good_bytes = 0
        if os.path.exists(path):
            with open(path, "rb") as f:
                for number, line in enumerate(f, 1):
                    if not line.endswith(b"\n"):
                        log.warning("%s:%d: ignoring a torn last line", path, number)
                        break
                    try:
                        record = json.loads(line)
                    except ValueError:
                        record = None
                    if not isinstance(record, dict):
                        raise JournalError(f"{path}:{number}: corrupt record")
                    records.append(record)
                    good_bytes += len(line)
        self._file = open(path, "ab", opener=_private)
        self._file.truncate(good_bytes)
        self._since_snapshot = len(records)
        return state, records

    def append(self, record: dict) -> int:
        """Queue one record (call under the owner's lock); returns its number for ``wait``."""
        self._file.write(encode(record))
        self._appended += 1
        self._since_snapshot += 1
        return self._appended

    def wait(self, number: int) -> None:
        """Return once record ``number`` is on disk, fsyncing if no one else has."""
        with self._flush_lock:
            if self._durable >= number:
                return
            target = self._appended
            self._file.flush()
            os.fsync(self._file.fileno())
            self._durable = target

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
            self._file.close()
            os.remove(self._journal_path(self.generation))
            self._file, self.generation = new_file, generation
            self._durable = self._appended
        self._since_snapshot = 0


def _private(path: str, flags: int) -> int:
    """``open`` opener creating files readable by their owner only."""
    return os.open(path, flags, 0o600)


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
    ``self.record``; ``apply`` replays a record, ``dump``/``restore`` convert
    the whole state for snapshots. The reply to a request leaves only once its
    records are on disk.

    Requests may carry a ``deadline`` (wall-clock seconds) in the envelope:
    work arriving after it is refused, and ``writing`` checks it again once
    the lock is held, right before the change, so a frontend that gave up
    waiting can say "nothing changed". With a ``secret``, every op but
    ``Hello`` and ``Authenticate`` is ``forbidden`` until the connection has
    answered its challenge.
    """

    envelope_fields = ENVELOPE_FIELDS | {"deadline"}
    open_ops = frozenset({"Hello", "Authenticate"})

    def __init__(self) -> None:
        super().__init__()
        self.ops["Authenticate"] = Op(self.authenticate, {"proof": Str(64, 64)},
                                      needs_session=False)
        self.secret: bytes | None = None
        self._lock = threading.Lock()
        self._journal: Journal | None = None
        self._unsynced = threading.local()  # .number: this thread's last record to wait for

    def hello(self, request: Request) -> dict:
        reply = super().hello(request)
        if self.secret is not None:
            request.peer.challenge = secrets.token_bytes(32)
            reply["challenge"] = request.peer.challenge.hex()
        return reply

    def authenticate(self, request: Request, proof: str) -> dict:
        peer = request.peer
        if (self.secret is None or not peer.challenge
                or not hmac.compare_digest(proof, auth_proof(self.secret, peer.challenge))):
            raise ApiError("forbidden", "Wrong proof of the deployment secret (say Hello first).")
        peer.authenticated, peer.challenge = True, b""
        return {}

    def admit(self, request: Request, message: dict) -> None:
        if (self.secret is not None and not request.peer.authenticated
                and request.op not in self.open_ops):
            raise ApiError("forbidden", "This connection has not proven the deployment secret.")
        deadline = message.get("deadline")
        if deadline is not None:
            if type(deadline) not in (int, Decimal) or not 0 <= deadline < 2 ** 40:
                raise ApiError("bad_request", "'deadline' must be a time in seconds since 1970.")
            request.deadline = float(deadline)
            request.check_deadline()

    @contextlib.contextmanager
    def writing(self, request: Request) -> Iterator[None]:
        """Hold the state lock for a change, refusing it if the request's deadline has passed."""
        with self._lock:
            request.check_deadline()
            yield

    def open_data_dir(self, directory: str) -> None:
        """Load the state saved in ``directory`` and journal every change from now on."""
        journal = Journal(directory)
        state, records = journal.load()
        damaged = (KeyError, IndexError, TypeError, ValueError, AttributeError)
        with self._lock:
            if state is not None:
                try:
                    self.restore(state)
                except damaged as exc:
                    raise JournalError(f"{journal.snapshot_path}: cannot restore it "
                                       f"({type(exc).__name__}: {exc})") from None
            for number, record in enumerate(records, 1):
                try:
                    self.apply(record)
                except damaged as exc:
                    raise JournalError(f"{journal.current_path()}:{number}: cannot apply this "
                                       f"record ({type(exc).__name__}: {exc})") from None
        self._journal = journal
        log.info("%s: loaded %s with %d journal records", self.name, directory, len(records))

    @property
    def journaling(self) -> bool:
        return self._journal is not None

    def record(self, change: dict) -> None:
        """Journal one change already made (call under ``self._lock``)."""
        if self._journal is None:
            return
        self._unsynced.number = self._journal.append(change)
        if self._journal.snapshot_due():
            self._journal.snapshot(self.dump())

    def dispatch(self, message: dict, peer: Peer | None = None) -> Any:
        try:
            return super().dispatch(message, peer)
        finally:
            self.wait_for_journal()

    def wait_for_journal(self) -> None:
        """Return once this thread's changes are on disk (call without the lock)."""
        number = getattr(self._unsynced, "number", 0)
        if number:
            self._unsynced.number = 0
            self._journal.wait(number)

    def apply(self, change: dict) -> None:
        raise NotImplementedError

    def dump(self) -> Any:
        raise NotImplementedError

    def restore(self, state: Any) -> None:
        raise NotImplementedError


def database_main(database: Database, args: argparse.Namespace) -> None:
    """Take the secret, open the data directory if asked (stop with a clear message if it is
    damaged), then serve."""
    database.secret = read_secret(args.secret_file)
    if database.secret is None and not is_loopback(args.host):
        sys.exit(f"{database.name}: refusing to listen on {args.host} without a secret: "
                 "beyond loopback anyone could change the data; pass --secret-file")
    if args.data_dir:
        try:
            database.open_data_dir(args.data_dir)
        except (JournalError, OSError) as exc:
            sys.exit(f"{database.name}: cannot load the data directory: {exc}")
    serve(database, args)


# -- frontend plumbing (shared by seller_server.py and buyer_server.py) -----

PRICE_CENTS = Int(1, 100_000_000)  # how prices travel between frontends and databases
CREDENTIALS = {"username": USERNAME, "password": PASSWORD}
SALT = Hex(16)
PASSWORD_HASH = Hex(32)
HASH_COST = Int(10, 20)  # scrypt's n is 2 ** cost
DEFAULT_HASH_COST = 14  # ~50 ms and 16 MiB per hash


class PasswordHasher:
    """scrypt, queued first come, first served, at most one hash per core at once.

    Hashing is deliberately slow, so it lives in the frontends, which can be
    multiplied across hosts, not in the one customer database. The executor's
    queue is FIFO; memory is bounded by the workers (16 MiB each at cost 14),
    not by the number of clients waiting.
    """

    def __init__(self, cost: int = DEFAULT_HASH_COST, workers: int | None = None) -> None:
        self.cost = cost
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, thread_name_prefix="scrypt")

    def hash(self, password: str, salt: bytes, cost: int | None = None) -> bytes:
        """The password's hash with ``salt`` at ``cost`` (this hasher's own by default)."""
        return self._pool.submit(scrypt, password, salt, cost or self.cost).result()


def scrypt(password: str, salt: bytes, cost: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2 ** cost, r=8, p=1, dklen=32,
                          maxmem=256 << 20)


def return_big_blocks_to_the_system() -> None:
    """Make glibc give each scrypt's 16 MiB back when the hash is done.

    Otherwise glibc's growing mmap threshold parks one such block in each of
    its per-thread arenas for good. A no-op where the C library has no ``mallopt``.
    """
    m_mmap_threshold = -3
    try:
        ctypes.CDLL(None).mallopt(m_mmap_threshold, 1 << 20)
    except (OSError, AttributeError):
        pass


class Frontend(Service):
    """A stateless frontend: the account ops of one role, plus ``role_ops()``.

    Nothing is kept between requests; sessions live in the customer database.
    Passwords are hashed here (``PasswordHasher``); the database stores and
    compares hashes only.
    """

    role = ""

    def __init__(self, customer_db: Client, product_db: Client,
                 hasher: PasswordHasher | None = None) -> None:
        super().__init__()
        self.customer = customer_db
        self.product = product_db
        self.hasher = hasher or PasswordHasher()
        self.ops.update({
            "CreateAccount": Op(self.create_account, CREDENTIALS, needs_session=False),
            "Login": Op(self.login, CREDENTIALS, needs_session=False),
            "Logout": Op(self.logout),
            **self.role_ops(),
        })

    def role_ops(self) -> dict[str, Op]:
        raise NotImplementedError

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this frontend's own flags."""

    def configure(self, args: argparse.Namespace) -> None:
        """Take this frontend's own flags."""

    def create_account(self, request: Request, username: str, password: str) -> dict:
        salt = secrets.token_bytes(16)
        digest = self.hasher.hash(password, salt)
        result = self.customer.call("CreateAccount", {
            "role": self.role, "username": username, "salt": salt.hex(),
            "hash": digest.hex(), "cost": self.hasher.cost})
        return {f"{self.role}_id": result["user_id"]}

    def login(self, request: Request, username: str, password: str) -> dict:
        """Fetch the account's salt, hash here, let the database compare.

        An unknown name gets a made-up salt and is hashed all the same, so it
        costs what a known one costs.
        """
        account = {"role": self.role, "username": username}
        salt = self.customer.call("GetSalt", account, idempotent=True)
        digest = self.hasher.hash(password, bytes.fromhex(salt["salt"]), salt["cost"])
        result = self.customer.call("Login", {**account, "hash": digest.hex()})
        return {"session": result["session"], f"{self.role}_id": result["user_id"]}

    def logout(self, request: Request) -> dict:
        return self.customer.call("Logout", {"role": self.role}, request.session)

    def user_id(self, request: Request) -> int:
        """The id behind the request's session (checked and refreshed), or invalid_session."""
        return self.customer.call("CheckSession", {"role": self.role}, request.session,
                                  idempotent=True)["user_id"]

    def seller_rating(self, request: Request, seller_id: int | None) -> RawResult:
        args = {"role": self.role}
        if seller_id is not None:
            args["seller_id"] = seller_id
        return self.customer.call_raw("GetSellerRating", args, request.session, idempotent=True)


def frontend_main(frontend: type[Frontend], description: str, env_prefix: str, port: int,
                  argv: list[str] | None = None) -> None:
    parser = service_parser(description, env_prefix, port)
    env_default(parser, "--customer-db", "CUSTOMER_DB_ADDR", "127.0.0.1:9002",
                "customer database HOST:PORT", type=parse_address)
    env_default(parser, "--product-db", "PRODUCT_DB_ADDR", "127.0.0.1:9001",
                "product database HOST:PORT", type=parse_address)
    env_default(parser, "--db-timeout", "DB_TIMEOUT", 5.0,
                "seconds to wait for a database reply", type=float)
    env_default(parser, "--db-pool", "DB_POOL", DEFAULT_DB_POOL,
                "most connections kept open to each database (requests wait for a free one); "
                "a database's --max-connections must cover the pools of all its frontends",
                type=int)
    env_default(parser, "--hash-cost", "HASH_COST", DEFAULT_HASH_COST,
                "scrypt cost of new passwords, as log2 of its n (10 to 20); lower is faster "
                "and weaker, for tests", type=int, choices=range(10, 21), metavar="N")
    frontend.add_arguments(parser)
    args = parser.parse_args(argv)
    secret = read_secret(args.secret_file)

    def database(address: tuple[str, int]) -> Client:
        return Client(address, args.db_timeout, secret=secret, pool_size=max(1, args.db_pool),
                      deadlines=True)

    return_big_blocks_to_the_system()
    service = frontend(database(args.customer_db), database(args.product_db),
                       PasswordHasher(args.hash_cost))
    service.configure(args)
    serve(service, args)


# -- CLI plumbing (shared by seller_client.py and buyer_client.py) ----------
#
# A command takes its values from the line or, at a terminal, asks for the
# missing ones; checks each with the validators above (the server's own
# limits) before sending; sends one op; and shows the reply to a person.
# Every failure becomes one sentence on stderr, and the CLI goes on.

CLI_TIMEOUT = 20.0  # seconds to wait for a frontend: longer than its database timeouts
QUIT_WORDS = ("quit", "exit")
HELP_WORDS = ("help", "?", "menu")
MENU_USAGE_WIDTH = 36  # so that the menu fits 80 columns
CLI_SYNTAX = """\
At a terminal the CLI shows this menu, asks for every value left off the line
(Enter alone cancels, or skips an optional value) and reads passwords without
echo. When standard input is not a terminal, it reads one command per line with
its values on the line, prints only results, writes errors to stderr and exits
with status 1 if any command failed:

  printf 'login alice pw\\n{example}\\n' \\
      | python3 {role}_client.py

Quote values that contain spaces ("desk lamp"); keywords are comma-separated
(desk,light); prices are in dollars (17.50). Lines starting with # are skipped.
quit, the end of the input, Ctrl-D and Ctrl-C all log out first."""


class CliError(Exception):
    """One sentence to tell the person; the CLI then goes on with the next command."""


class NotSent(ApiError):
    """The frontend could not be reached, so the request never left this process."""


class CliClient(Client):
    """A ``Client`` that tells 'never sent' (``NotSent``) apart from 'sent, no answer',
    and reads amounts exactly (``Decimal``), so any total shows to the cent."""

    exact = True

    def _checkout(self) -> Connection:
        try:
            return super()._checkout()
        except ApiError as error:
            raise NotSent(error.code, error.message) from None


def read_price(text: str) -> Decimal:
    """'17.50' or '$17.50' -> Decimal; ``Price`` then checks it.

    A comma is refused rather than guessed at: '17,50' may mean 17.50 or 1750.
    """
    return Decimal(text.strip().removeprefix("$"))


def read_words(text: str) -> list[str]:
    """'desk,light' or 'desk light' -> ['desk', 'light']; ``Keywords`` then checks it."""
    return text.replace(",", " ").split()


@dataclass
class Arg:
    """One value of a command: the op's field, how to ask for it, read it and check it."""

    name: str
    prompt: str
    check: Validator
    read: Callable[[str], Any] = str
    secret: bool = False  # asked for without echo

    @property
    def usage(self) -> str:
        return f"[{self.name.upper()}]" if self.check.optional else self.name.upper()

    def parse(self, text: str) -> Any:
        """Text -> the value to send, within the spec's limits, or ``CliError``."""
        try:
            value = self.read(text)
        except (ValueError, ArithmeticError):
            value = text  # not even the right type: the check says what is expected
        try:
            self.check(self.name.upper(), value)
        except ApiError as error:  # "'PRICE' must be ..." -> "PRICE must be ...", as in usage
            raise CliError(error.message.replace("'", "")) from None
        return json_safe(value)


@dataclass
class Command:
    """One CLI command: its name, the spec op it sends, its values, how to show the reply."""

    name: str
    op: str
    summary: str
    args: tuple[Arg, ...] = ()
    show: Callable[[dict], str] = lambda result: "Done."
    read_only: bool = False  # a lost reply may be retried (the op changes nothing)
    needs_session: bool = True
    run: Callable[["Shell", dict], str] | None = None  # replaces sending ``op`` + ``show``

    def usage(self) -> str:
        return " ".join([self.name, *(arg.usage for arg in self.args)])


def money(dollars: float | Decimal) -> str:
    return f"${dollars:,.2f}"


def table(rows: list[list[Any]], headers: list[str] | None = None) -> str:
    """Rows as aligned columns; columns of numbers and money are right-aligned."""
    body = [[str(cell) for cell in row] for row in rows]
    lines = ([list(headers)] if headers else []) + body
    if not lines:
        return ""
    right = [all(_looks_numeric(row[i]) for row in body if row[i])
             for i in range(len(lines[0]))]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.rjust(width) if align else cell.ljust(width)
                  for cell, width, align in zip(line, widths, right)).rstrip()
        for line in lines)


def _looks_numeric(cell: str) -> bool:
    return all(c in "0123456789$.,+-/" for c in cell)


def items_table(items: list[dict], with_seller: bool = True) -> str:
    headers = ["ID", "Name", "Cat", "Cond", "Price", "Units", "Keywords", "Votes +/-"]
    rows = [[item["item_id"], item["name"], item["category"], item["condition"],
             money(item["price"]), item["quantity"], ",".join(item["keywords"]),
             f"+{item['thumbs_up']}/-{item['thumbs_down']}"] for item in items]
    if with_seller:
        headers.append("Seller")
        for row, item in zip(rows, items):
            row.append(item["seller_id"])
    return table(rows, headers)


def rating_text(result: dict) -> str:
    """A ``GetSellerRating`` result as one line."""
    return (f"Seller {result['name']} (id {result['seller_id']}): "
            f"{result['thumbs_up']} thumbs up, {result['thumbs_down']} thumbs down, "
            f"{result['items_sold']} units sold.")


def menu(commands: list[Command]) -> str:
    """The numbered commands; a usage too long for the column gets a line of its own."""
    entries = [(str(number), command.usage(), command.summary)
               for number, command in enumerate(commands, 1)]
    entries += [("", "help [COMMAND]", "this list, or one command in detail"),
                ("", "quit", "log out and leave (also Ctrl-D)")]
    width = max(len(usage) for _, usage, _ in entries if len(usage) <= MENU_USAGE_WIDTH)
    lines = []
    for number, usage, summary in entries:
        if len(usage) > width:
            lines.append(f"  {number:>2}  {usage}")
            number, usage = "", ""
        lines.append(f"  {number:>2}  {usage:<{width}}  {summary}")
    return "\n".join(lines)


class Shell:
    """One CLI's loop: reads command lines, runs them, and holds the session token.

    The token lives only in this process; ``close`` logs it out.
    """

    def __init__(self, role: str, commands: list[Command], address: tuple[str, int],
                 interactive: bool) -> None:
        self.role = role
        self.commands = commands
        self.address = address
        self.server = f"the {role} server at {address[0]}:{address[1]}"
        self.client = CliClient(address, CLI_TIMEOUT)
        self.interactive = interactive
        self.session: str | None = None
        self.username = ""
        self.failures = 0
        self.remember: Callable[[str], None] = lambda line: None  # readline's history
        self.by_name: dict[str, Command] = {}
        for number, command in enumerate(commands, 1):
            for key in (str(number), command.name, command.op.lower()):
                self.by_name[key] = command

    def loop(self, example: str) -> int:
        """Run commands until quit or the end of input, log out, return the exit status."""
        try:
            if self.interactive:
                print(self.greeting(example))
                while True:
                    line = input(self.prompt())
                    self.remember(line)  # command lines only: not answers such as card numbers
                    if not self.run_line(line):
                        break
            else:
                for line in sys.stdin:
                    if not self.run_line(line):
                        break
        except (EOFError, KeyboardInterrupt):
            if self.interactive:
                print()
        finally:
            self.close()
        return 1 if self.failures and not self.interactive else 0

    def greeting(self, example: str) -> str:
        lines = [f"Marketplace {self.role} CLI, talking to {self.server}.",
                 "Type a number or a command; values may follow on the same line, "
                 f"e.g. {example}", "", menu(self.commands), ""]
        try:
            socket.create_connection(self.address, timeout=2).close()
        except OSError:
            lines += [f"Note: {self.server} does not answer yet; "
                      "commands will work once it is up.", ""]
        return "\n".join(lines)

    def prompt(self) -> str:
        return f"{self.role} {self.username}> " if self.session else f"{self.role}> "

    def run_line(self, line: str) -> bool:
        """Run one command line; False when it says quit."""
        if line.lstrip().startswith("#"):
            return True
        try:
            words = shlex.split(line)
        except ValueError:
            self.fail('A quote is not closed; quote values with spaces like "desk lamp".')
            return True
        if not words:
            return True
        name = words[0].lower()
        if name in QUIT_WORDS:
            return False
        if name in HELP_WORDS:
            print(self.help(words[1:]))
            return True
        command = self.by_name.get(name)
        if command is None:
            self.fail(f"There is no command '{words[0]}'; type help to see them all.")
            return True
        try:
            print(self.execute(command, words[1:]))
        except CliError as error:
            self.fail(str(error))
        return True

    def fail(self, message: str) -> None:
        self.failures += 1
        sys.stdout.flush()  # keep results and errors in order when both go to one place
        print(message, file=sys.stderr)

    def help(self, words: list[str]) -> str:
        if not words:
            return menu(self.commands)
        command = self.by_name.get(words[0].lower())
        if command is None:
            return f"There is no command '{words[0]}'."
        rows = [[arg.usage, arg.prompt] for arg in command.args]
        return "\n".join([f"{command.usage()}: {command.summary} ({command.op}).",
                          *("  " + line for line in table(rows).splitlines())])

    def execute(self, command: Command, values: list[str]) -> str:
        """Check the values (asking for missing ones at a terminal), run, describe the result."""
        if command.needs_session and not self.session:
            raise CliError("Log in first: login USERNAME PASSWORD (or signup to make an account).")
        if len(values) > len(command.args):
            raise CliError(f"Too many values; usage: {command.usage()} "
                           '(quote values with spaces, like "desk lamp").')
        args = {}
        for position, arg in enumerate(command.args):
            if position < len(values):
                args[arg.name] = arg.parse(values[position])
            elif self.interactive:
                args[arg.name] = self.ask(arg)
            elif arg.check.optional:
                args[arg.name] = arg.check.default
            else:
                raise CliError(f"{arg.name.upper()} is missing; usage: {command.usage()}.")
        if command.run:
            return command.run(self, args)
        return command.show(self.call(command.op, args, command.read_only))

    def ask(self, arg: Arg) -> Any:
        """Ask for one value until it passes its check; Enter alone skips or cancels."""
        hint = " (Enter to skip)" if arg.check.optional else ""
        while True:
            try:
                text = (getpass.getpass if arg.secret else input)(f"  {arg.prompt}{hint}: ")
            except EOFError:
                print()
                raise CliError("Cancelled.") from None
            if not text:
                if arg.check.optional:
                    return arg.check.default
                raise CliError("Cancelled.")
            try:
                return arg.parse(text)
            except CliError as error:
                print(f"  {error}", file=sys.stderr)

    def call(self, op: str, args: dict, read_only: bool = False) -> dict:
        """Send one op with the session, if any; return its result or raise ``CliError``.

        A write whose reply is lost is not resent (``Client`` retries reads only).
        """
        message: dict[str, Any] = {"op": op, "args": args}
        if self.session:
            message["session"] = self.session
        try:
            reply = self.client.request(message, idempotent=read_only)
        except NotSent:
            raise CliError(f"Cannot reach {self.server}; is it running? Nothing was sent; "
                           "try again once it is back.") from None
        except ApiError:
            if read_only:
                raise CliError(f"No answer from {self.server}; try again.") from None
            raise CliError(f"No answer from {self.server}, so it is unknown whether {op} "
                           "took effect; check before trying it again.") from None
        if reply.get("ok"):
            return reply.get("result", {})
        raise CliError(self.explain(reply.get("error") or {}))

    def explain(self, error: dict) -> str:
        """A server's error reply as one sentence for a person."""
        code = error.get("code")
        if code == "invalid_session":
            self.forget_session()
            return "You are not logged in any more (the session ended or timed out); log in again."
        if code == "unavailable":
            return "The marketplace cannot reach one of its databases right now; try again soon."
        if code == "internal":
            return "The server hit an internal error; try again, and report it if it persists."
        return " ".join(str(error.get("message", "")).split()) or "The server refused that."

    def signup(self, args: dict) -> str:
        user_id = self.call("CreateAccount", args)[f"{self.role}_id"]
        created = f"Created {self.role} account {args['username']} (id {user_id})."
        return created + "\n" + self.login(args)

    def login(self, args: dict) -> str:
        result = self.call("Login", args)
        self.close_session()  # the previous one, if any
        self.session, self.username = result["session"], args["username"]
        return f"Logged in as {self.username} ({self.role} id {result[f'{self.role}_id']})."

    def logout(self, args: dict) -> str:
        self.call("Logout", {})
        self.forget_session()
        return "Logged out."

    def close_session(self) -> None:
        """Log out without a word, if logged in (the token is dropped either way)."""
        if self.session:
            try:
                self.call("Logout", {})
            except CliError:
                pass
            self.forget_session()

    def forget_session(self) -> None:
        self.session, self.username = None, ""

    def close(self) -> None:
        logged_in = bool(self.session)
        self.close_session()  # before printing: the terminal may be gone (SIGHUP)
        self.client.close()
        if logged_in and self.interactive:
            print("Logged out.")


def account_commands(role: str) -> list[Command]:
    """signup, login and logout: the same on both sides."""
    credentials = (Arg("username", "Username", USERNAME),
                   Arg("password", "Password", PASSWORD, secret=True))
    return [
        Command("signup", "CreateAccount", f"create a {role} account and log in", credentials,
                needs_session=False, run=Shell.signup),
        Command("login", "Login", "log in", credentials, needs_session=False, run=Shell.login),
        Command("logout", "Logout", "log out", run=Shell.logout),
    ]


def cli_main(role: str, commands: list[Command], env_prefix: str, port: int, example: str,
             argv: list[str] | None = None) -> None:
    """Parse flags, then run the CLI of ``role`` on stdin until quit; exits with its status."""
    commands = account_commands(role) + commands
    parser = argparse.ArgumentParser(
        description=f"The {role}'s command line for the marketplace.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands (a number or a name, then its values):\n" + menu(commands) + "\n\n"
               + CLI_SYNTAX.format(role=role, example=example))
    env_default(parser, "--host", f"{env_prefix}_HOST", "127.0.0.1", f"{role} server host")
    env_default(parser, "--port", f"{env_prefix}_PORT", port, f"{role} server port", type=int)
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each result as soon as it is known
    shell = Shell(role, commands, (args.host, args.port), sys.stdin.isatty())
    for name in ("SIGTERM", "SIGHUP"):  # log out on these too
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit_on_signal)
    if shell.interactive:
        shell.remember = _use_readline([command.name for command in commands]
                                       + [*QUIT_WORDS, "help"])
    try:
        status = shell.loop(example)
    except KeyboardInterrupt:  # a second Ctrl-C while logging out
        status = 130
    sys.exit(status)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _use_readline(words: list[str]) -> Callable[[str], None]:
    """Line editing and Tab completion of command names, where readline exists.

    Returns the function that adds a line to the history (a no-op without readline).
    """
    try:
        import readline
    except ImportError:
        return lambda line: None

    def complete(text: str, state: int) -> str | None:
        matches = [word for word in words if word.startswith(text)]
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    libedit = "libedit" in (readline.__doc__ or "")
    readline.parse_and_bind("bind ^I rl_complete" if libedit else "tab: complete")
    readline.set_auto_history(False)
    return lambda line: readline.add_history(line) if line.strip() else None
