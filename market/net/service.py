"""A service: an op table behind one entry point, ``respond`` (a request line in, a reply
line out). What a connection carries and how it is served is ``market.net.server``'s.

``Service.respond`` decodes a line, ``dispatch``es it (envelope checks, the ``admit`` hook,
argument validation, then ``Op.handler(request, **args)``), encodes the result or the
error (the one place an error becomes a reply), counts it in ``Stats`` and logs it: one
DEBUG line per request; a user's error at DEBUG too, what needs an operator at WARNING.
Every service answers ``Hello`` (what it is) and ``Stats`` (how it is doing).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from market.config import MAX_LINE
from market.errors import TRANSIENT_ERRORS, USER_ERRORS
from market.keys import IDEMPOTENCY_KEY
from market.net.stats import RequestStats, rss_bytes
from protocol import (
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

OTHER_OP = "other"  # what Stats counts a request under when its op is none of the service's
CONTRACT_VERSION = "2026-11-25"
ENVELOPE_FIELDS = frozenset({"op", "args", "session", "id"})

log = logging.getLogger(__name__)



@dataclass
class Op:
    """One entry of a service's op table."""

    handler: Callable[..., dict | RawResult]
    schema: dict[str, Validator] = field(default_factory=dict)
    needs_session: bool = True
    # A write that takes the envelope's ``idempotency_key`` (frontends, contract §11).
    keyed: bool = False




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
        # The connections served now, the cap, and how many were refused (the Server that
        # serves this service says; ``market.net.server``).
        self.connections: Callable[[], dict[str, int]] = lambda: {"open": 0, "max": 0,
                                                                  "refused": 0}
        # Where it listens, and how to end every connection it serves (its Server sets both).
        self.address: tuple[str, int] = ("", 0)
        self.drop_connections: Callable[[], None] = lambda: None

    def start(self) -> None:
        """Called once the server is bound, before serving (start threads here)."""

    def hello(self, request: "Request") -> dict:
        return {"service": self.kind, "version": CONTRACT_VERSION}

    def stats(self, request: "Request") -> dict:
        """How this service is doing (docs/operations.md, "Stats", says what each field means).
        A ``Stats`` request is counted once answered, so its own reply leaves it out."""
        figures = self.request_stats.snapshot(time.perf_counter())
        connections = self.connections()
        return {"service": self.kind, "version": CONTRACT_VERSION,
                "uptime_s": figures.pop("uptime_s"), "connections": connections, **figures,
                "rss_bytes": rss_bytes(), "cpu_s": round(time.process_time(), 6)}

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
        level = (logging.DEBUG if outcome == "ok" or outcome in USER_ERRORS
                 else logging.INFO if outcome in TRANSIENT_ERRORS else logging.WARNING)
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
