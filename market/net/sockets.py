"""Blocking sockets with kernel timeouts, and reading request lines from them.

``set_socket_timeout`` gives a blocking socket a kernel receive or send
timeout (no ``poll`` before each call, and fine past 1,024 descriptors);
``LineReader`` reads a server's request lines within an idle limit and a
per-line limit.
"""
from __future__ import annotations

import socket
import struct
import time

from market.config import MAX_LINE
from protocol import too_large

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
