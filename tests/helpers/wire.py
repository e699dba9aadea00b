"""The one raw wire client of the tests: a plain TCP socket that sends bytes and reads
reply lines, with no ``protocol.py`` on the way, for tests that prove the wire format,
send what no client would (half lines, junk, pipelines, huge ids) or measure replies.

    wire = Wire(address)
    wire.send(b'{"op": "Hello"}\\n')         # the parsed reply, or None once closed
    wire.ask("GetItem", {"item_id": 1})      # the same, the line built from its parts
    wire.code("GetItem", {"item_id": 1})     # "ok", the error code, or "closed"
    wire.exchange(line)                      # the raw reply line (b"" once closed)
    wire.write(half); wire.read_line()       # one side at a time
"""
from __future__ import annotations

import json
import socket
import struct


def line_of(message: dict) -> bytes:
    """``message`` as one compact request line, UTF-8 as is (its length is what a
    service counts against the 1 MiB limit, plus the newline)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class Wire:
    """One raw TCP connection to a service. Keeps every reply line it read (``replies``)."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.rfile = self.sock.makefile("rb")
        self.replies: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Send raw bytes: any part of a line, or many lines."""
        self.sock.sendall(data)

    def read_line(self, limit: int = -1) -> bytes:
        """The next reply line as sent (at most ``limit`` bytes of it); b"" once closed."""
        line = self.rfile.readline(limit)
        if line:
            self.replies.append(line)
        return line

    def exchange(self, data: bytes, limit: int = -1) -> bytes:
        """Send ``data`` and read one reply line, raw (b"" if the service closed)."""
        self.write(data)
        return self.read_line(limit)

    def send(self, data: bytes) -> dict | None:
        """Send raw bytes; the parsed reply line, or ``None`` if the service closed the
        connection (before or after reading them)."""
        try:
            line = self.exchange(data)
        except (ConnectionResetError, BrokenPipeError):
            return None
        return json.loads(line) if line else None

    def send_json(self, message: dict) -> dict | None:
        """Send ``message`` as one line; the parsed reply (``None`` if closed)."""
        return self.send(line_of(message))

    def ask(self, op: str, args: dict | None = None, session: str | None = None,
            request_id=None) -> dict | None:
        """One request from its parts (each left out when None); the parsed reply, or
        ``None`` if the service closed the connection."""
        message: dict = {"op": op}
        if args is not None:
            message["args"] = args
        if request_id is not None:
            message["id"] = request_id
        if session is not None:
            message["session"] = session
        return self.send_json(message)

    def code(self, op: str, args: dict | None = None, session: str | None = None) -> str:
        """'ok', the error code, or 'closed'."""
        reply = self.ask(op, args, session)
        if reply is None:
            return "closed"
        return "ok" if reply["ok"] else reply["error"]["code"]

    def result(self, op: str, args: dict | None = None, session: str | None = None) -> dict:
        """The result of a request that must succeed."""
        reply = self.ask(op, args, session)
        assert reply is not None and reply["ok"], (op, reply)
        return reply["result"]

    def is_closed(self) -> bool:
        """True if the service has closed the connection: nothing more comes (EOF or
        a reset)."""
        try:
            return self.rfile.readline() == b""
        except ConnectionResetError:
            return True

    def close(self, reset: bool = False) -> None:
        """Close; with ``reset``, with a TCP reset (SO_LINGER 0) instead of a FIN."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.sock.close()

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
