"""The wire: what every part of the marketplace says to every other, and nothing else.

Owns, once for all six parts:

* framing: one JSON object per line, UTF-8, at most ``MAX_LINE`` bytes
  (``encode``, ``decode``, ``read_line``);
* the envelope: ``{"op", "args", "session", "id"}`` in (``envelope``),
  ``{"ok", "result"|"error", "id"}`` out (``error_reply``, ``result_of``);
* ``ApiError``, the one exception type, carrying a spec error code;
* money on the wire: ``ExactDollars`` keeps amounts past a float's precision exact;
* declarative argument validation: validators (``Str``, ``Int``, ``Price`` ...)
  in a dict per op, checked by ``validate``.

Sockets, threads and processes live in ``market/``; this module does no I/O
beyond reading one line from a file object.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from market.config import MAX_ECHO_DEPTH, MAX_LINE

# -- errors -----------------------------------------------------------------

ERROR_CODES = frozenset({
    "bad_request", "unknown_op", "auth_failed", "invalid_session", "forbidden",
    "not_found", "conflict", "too_large", "unavailable", "deadline_exceeded",
    "resource_exhausted", "internal",
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
OK_PREFIX = b'{"ok":true,"result":'
NO_ID_SUFFIX = b',"id":null}\n'


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


def envelope(op: str, args: dict | None = None, session: str | None = None) -> dict:
    """A request envelope; ``args`` and ``session`` only when there are some."""
    message: dict[str, Any] = {"op": op}
    if args:
        message["args"] = args
    if session is not None:
        message["session"] = session
    return message


def error_reply(error: ApiError, request_id: Any) -> dict:
    return {"ok": False, "error": error.to_json(), "id": request_id}


def result_of(reply: dict) -> dict:
    """The ``result`` of a reply envelope, or its error raised as ``ApiError``."""
    if reply.get("ok"):
        return reply.get("result", {})
    error = reply.get("error")
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    raise ApiError(code if isinstance(code, str) and code in ERROR_CODES else "internal",
                   str(error.get("message", "The server failed.")))


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
class Omittable(Validator):
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
        if not isinstance(value, str) or not self.min_len <= len(value) <= self.max_len:
            raise self.fail(name, self.what())
        if self.no_control and _CONTROL.search(value):
            raise self.fail(name, self.what() + " without control characters")
        if self.no_space and _SPACE.search(value):
            raise self.fail(name, self.what() + " without whitespace")
        return value

    def what(self) -> str:
        return f"a string of {self.min_len} to {self.max_len} characters"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1
_SPACE = re.compile(r"\s")  # what str.isspace() calls whitespace


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


@dataclass
class Price(Validator):
    """A JSON number > 0 and <= ``max_dollars`` with at most two decimals -> int cents."""

    max_dollars: int

    def __call__(self, name: str, value: Any) -> int:
        what = f"a number above 0 and at most {self.max_dollars} with at most two decimal places"
        if type(value) is int:
            value = Decimal(value)
        # Compare, never round: Decimal arithmetic rounds to 28 digits, so
        # 0.0100000000000000000000000000001 * 100 would pass as a whole number.
        if (not isinstance(value, Decimal) or not value.is_finite()
                or not 0 < value <= self.max_dollars or value != value.quantize(CENT)):
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
        for item in value:
            try:
                word(name, item)
            except ApiError:
                shown = json.dumps(item) if isinstance(item, str) else str(item)
                raise self.fail(name, f"keywords of 1 to 8 characters without spaces or control "
                                      f"characters, and {shown[:40]} is not one") from None
            if item.lower() not in seen:
                seen.add(item.lower())
                kept.append(item)
        return kept


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass
class Hex(Validator):
    """``size`` bytes written as hex text -> ``bytes``."""

    size: int

    def __call__(self, name: str, value: Any) -> bytes:
        if (isinstance(value, str) and len(value) == 2 * self.size
                and all(c in _HEX_DIGITS for c in value)):
            return bytes.fromhex(value)
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
