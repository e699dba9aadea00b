"""The server side of every service: an op table served over a threaded TCP server.

Class tree, from the request inwards::

    Server (socketserver.ThreadingTCPServer)   accepts, caps connections, drains on stop
      RequestHandler                            one connection: lines in, replies out
        Service.respond -> Service.dispatch     one line: decode, admit, validate, call
          Op.handler(Request, **args)           the service's own code

Also owned here: the flags and environment variables every service takes
(``service_parser``), the secret file, how a service logs (``configure_logging``:
one DEBUG line per request, user errors at DEBUG, what needs an operator at
WARNING and up), what ``Stats`` answers (counted by ``market.net.stats``), and
``serve``, which binds, prints the ready line (``READY``) and serves until
SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import resource
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn

from market.config import (
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOG_LEVEL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_TIMEOUT,
    DRAIN_TIMEOUT,
)
from market.keys import IDEMPOTENCY_KEY
from market.net.sockets import LineReader, set_socket_timeout
from market.net.stats import RequestStats, rss_bytes
from protocol import (
    MAX_LINE,
    OK_PREFIX,
    ApiError,
    RawResult,
    Validator,
    decode,
    encode,
    encode_value,
    error_reply,
    json_safe,
    validate,
)

LISTEN_BACKLOG = 1024
READY = "{name} ready on {host}:{port}"  # the line a service prints once it serves
# Errors that are a user's ordinary mistakes, logged at DEBUG like a success; the rest
# (forbidden, too_large, unavailable, internal) are for an operator: WARNING and up.
USER_ERRORS = frozenset({"bad_request", "unknown_op", "auth_failed", "invalid_session",
                         "not_found", "conflict"})
OTHER_OP = "other"  # what Stats counts a request under when its op is none of the service's
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger("market.net.server")
logging.getLogger("market").addHandler(logging.NullHandler())  # the CLIs log nothing


@dataclass
class Op:
    """One entry of a service's op table."""

    handler: Callable[..., dict | RawResult]
    schema: dict[str, Validator] = field(default_factory=dict)
    needs_session: bool = True
    # A write that takes the envelope's ``idempotency_key`` (frontends, contract §11).
    keyed: bool = False


CONTRACT_VERSION = "2026-11-25"
ENVELOPE_FIELDS = frozenset({"op", "args", "session", "id"})


@dataclass
class Peer:
    """What a service knows about one connection: where it comes from, and whether it
    proved the deployment's secret."""

    address: str = "-"
    authenticated: bool = False
    challenge: bytes = b""


class Service:
    """Base of every service: an op table plus hooks. Subclasses add to ``ops``.

    A handler is called as ``handler(request, **args)``: ``request`` is the
    ``Request`` (op, session token, deadline, connection) and ``args`` are validated.
    Every service answers ``Hello`` with what it is (``kind``) and ``Stats`` with how
    it is doing (``stats``, which subclasses extend).
    """

    name = "service"
    kind = "service"  # what Hello says: "seller", "buyer", "product_db", "customer_db"
    envelope_fields = ENVELOPE_FIELDS

    def __init__(self) -> None:
        self.ops: dict[str, Op] = {"Hello": Op(self.hello, needs_session=False),
                                   "Stats": Op(self.stats, needs_session=False)}
        self.request_stats = RequestStats(time.perf_counter())
        self.server: Server | None = None  # set by the Server serving this service

    def start(self) -> None:
        """Called once the server is bound, before serving (start threads here)."""

    def hello(self, request: "Request") -> dict:
        return {"service": self.kind, "version": CONTRACT_VERSION}

    def stats(self, request: "Request") -> dict:
        """How this service is doing (README "Operating" says what each field means).
        A ``Stats`` request is counted once answered, so its own reply leaves it out."""
        figures = self.request_stats.snapshot(time.perf_counter())
        connections = (self.server.connections() if self.server
                       else {"open": 0, "max": 0, "refused": 0})
        return {"service": self.kind, "version": CONTRACT_VERSION,
                "uptime_s": figures.pop("uptime_s"), "connections": connections, **figures,
                "rss_bytes": rss_bytes()}

    def respond(self, line: bytes, peer: Peer | None = None) -> bytes:
        """Turn one request line into its encoded reply line; never raises. Counts the
        request in ``Stats`` and logs it (DEBUG, or WARNING for what needs an operator)."""
        started = time.perf_counter()
        message: Any = None
        request_id = None
        outcome = "ok"
        try:
            message = decode(line)
            request_id = json_safe(message.get("id"))
            result = self.dispatch(message, peer or Peer())
            if isinstance(result, RawResult):
                reply = b"".join((OK_PREFIX, result.json, b',"id":',
                                  encode_value(request_id), b"}\n"))
            else:
                reply = encode({"ok": True, "result": result, "id": request_id})
            if len(reply) > MAX_LINE + 1:  # only a huge echoed id can do this
                raise ApiError("too_large", f"The reply would be longer than {MAX_LINE} bytes; "
                                            "send a shorter id.")
            return reply
        except ApiError as error:
            outcome = error.code
            reply = encode(error_reply(error, request_id))
            return reply if len(reply) <= MAX_LINE + 1 else encode(error_reply(error, None))
        except Exception:
            outcome = "internal"
            log.exception("internal error in %s", _op_name(message))
            return encode(error_reply(ApiError("internal", "The server hit an internal error."),
                                      request_id))
        finally:
            self._served(message, outcome, started, peer)

    def _served(self, message: Any, outcome: str, started: float, peer: Peer | None) -> None:
        """Count one answered request and log it (an internal error is logged already)."""
        ended = time.perf_counter()
        op = message.get("op") if isinstance(message, dict) else None
        self.request_stats.record(op if isinstance(op, str) and op in self.ops else OTHER_OP,
                                  outcome, started, ended)
        level = logging.DEBUG if outcome == "ok" or outcome in USER_ERRORS else logging.WARNING
        if outcome != "internal" and log.isEnabledFor(level):
            log.log(level, "%s %s in %.2f ms, peer %s", _op_name(message),
                    "ok" if outcome == "ok" else "failed: " + outcome,
                    (ended - started) * 1000, (peer or Peer()).address)

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
        if "idempotency_key" in message:
            if not op.keyed:
                raise ApiError("bad_request", f"'{op_name}' changes nothing, so it takes no "
                                              "idempotency_key.")
            request.idempotency_key = IDEMPOTENCY_KEY("idempotency_key",
                                                      message["idempotency_key"])
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
    idempotency_key: str | None = None  # the client's, on a keyed write (contract §11)

    def check_deadline(self) -> None:
        """Refuse to go on once the caller has stopped waiting (so it was told: nothing changed)."""
        if self.deadline is not None and time.time() > self.deadline:
            raise ApiError("unavailable", "The request arrived too late and was not applied.")


class RequestHandler(socketserver.BaseRequestHandler):
    """Serves one connection: many requests, one reply line each, in order."""

    server: "Server"

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A client that stops reading its replies is dropped like a slow sender.
        set_socket_timeout(self.request, socket.SO_SNDTIMEO, self.server.read_timeout)
        self.lines = LineReader(self.request, self.server.idle_timeout,
                                self.server.read_timeout)
        self.peer = Peer("%s:%s" % self.client_address[:2])

    def handle(self) -> None:
        while True:
            try:
                line = self.lines.read_line()
            except ApiError as error:  # too_large: the rest of the line is unread, so close
                now = time.perf_counter()
                self.server.service.request_stats.record(OTHER_OP, error.code, now, now)
                log.warning("request failed: %s, peer %s", error.code, self.peer.address)
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
        self.refused = 0  # connections refused at the cap (only the accepting thread adds)
        # Guards ``_open``, the connections being served: never more than
        # ``max_connections``; one leaves when its handler thread ends.
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        service.server = self
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

    def connections(self) -> dict[str, int]:
        """For ``Stats``: connections served now, the cap, and how many were refused."""
        with self._lock:
            open_now = len(self._open)
        return {"open": open_now, "max": self.max_connections, "refused": self.refused}

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
        self.refused += 1
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


def env_default(parser: argparse.ArgumentParser, flag: str, env: str, default: Any,
                help: str, **kwargs: Any) -> None:
    """Add ``flag`` whose default comes from environment variable ``env``."""
    value = os.environ.get(env, default)
    shown = f"env {env}, default {default}" if default not in ("", None) else f"env {env}"
    parser.add_argument(flag, default=value, help=f"{help} ({shown})", **kwargs)


def service_parser(description: str, env_prefix: str, port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    env_default(parser, "--host", f"{env_prefix}_HOST", DEFAULT_HOST, "address to bind")
    env_default(parser, "--port", f"{env_prefix}_PORT", port, "port to listen on (0: any free)",
                type=int)
    env_default(parser, "--idle-timeout", "IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT,
                "seconds an idle connection is kept open", type=float)
    env_default(parser, "--read-timeout", "READ_TIMEOUT", DEFAULT_READ_TIMEOUT,
                "seconds a client may take to finish sending a request line, or to take "
                "a reply, before the connection is closed", type=float)
    env_default(parser, "--max-connections", "MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS,
                "connections served at once; more get 'unavailable' and are closed", type=int)
    env_default(parser, "--log-level", "LOG_LEVEL", DEFAULT_LOG_LEVEL,
                "least severe log lines written: DEBUG (a line per request), INFO, WARNING "
                "(what needs an operator) or ERROR", type=str.upper, choices=LOG_LEVELS)
    env_default(parser, "--secret-file", "MARKET_SECRET_FILE", "",
                "file holding the deployment's shared secret: databases serve only "
                "connections that prove they know it, frontends prove it")
    return parser


MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_hex(32))' > FILE; chmod 600 FILE"


def read_secret(path: str) -> bytes | None:
    """The deployment secret in ``path`` (surrounding whitespace dropped); None without a path.

    A secret shorter than 16 bytes, or one byte repeated, stops the start; a file
    that its group or others may read is logged as a WARNING.
    """
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
            mode = os.fstat(f.fileno()).st_mode
    except OSError as exc:
        exit_at_start(f"cannot read the secret file {path}: {exc.strerror}")
    if len(secret) < 16 or len(set(secret)) == 1:
        exit_at_start(f"the secret file {path} is too weak (it must hold at least 16 bytes, "
                      f"not all the same); make a random one: {MAKE_SECRET}")
    if mode & 0o077:
        log.warning("the secret file %s may be read by other users (mode %o): chmod 600 %s",
                    path, mode & 0o777, path)
    return secret


def configure_logging(service: str, level: str) -> None:
    """Log to stderr from ``level`` up, each line: UTC time, ``service[pid]``, level, the
    logger (``market.<module>``), message. Only the first call of a process configures."""
    if logging.root.handlers:
        return
    formatter = logging.Formatter(f"%(asctime)s.%(msecs)03dZ {service}[%(process)d] "
                                  "%(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    logging.root.addHandler(handler)
    logging.root.setLevel(level.upper())


def exit_at_start(message: str) -> NoReturn:
    """Log why the service cannot start (CRITICAL, time-stamped) and exit with status 1."""
    configure_logging(os.path.basename(sys.argv[0]).removesuffix(".py"), DEFAULT_LOG_LEVEL)
    log.critical("%s", message)
    sys.exit(1)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allow_open_files(count: int) -> None:
    """Raise the soft limit on open files to ``count``, as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(service: Service, args: argparse.Namespace) -> None:
    """Bind, print the ready line, serve until SIGTERM/SIGINT, then close cleanly.

    The ready line goes to stdout exactly as ``READY`` says (scripts parse it); a
    time-stamped log line says the same on stderr.
    """
    configure_logging(service.kind, args.log_level)
    allow_open_files(2 * args.max_connections + 1024)  # clients, database pools, journals
    try:
        server = Server((args.host, args.port), service, args.idle_timeout, args.read_timeout,
                        args.max_connections)
    except OSError as exc:
        exit_at_start(f"{service.name}: cannot listen on {args.host}:{args.port}: "
                      f"{exc.strerror}")
    service.start()
    host, port = server.server_address[:2]
    print(READY.format(name=service.name, host=host, port=port), flush=True)
    log.info("%s serving on %s:%d (pid %d)", service.name, host, port, os.getpid())

    def stop(signum, frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()  # no new connections from here on
        server.drain(DRAIN_TIMEOUT)
        log.info("%s stopped", service.name)


def parse_ready_line(line: str) -> tuple[str, int] | None:
    """The (host, port) a service's ``READY`` line names, or None if ``line`` is not one."""
    _, marker, where = line.strip().partition(" ready on ")
    host, colon, port = where.rpartition(":")
    if not marker or not colon or not (port.isascii() and port.isdigit()):
        return None
    return host, int(port)
