"""Proxies for fault tests, between a client and a server (``Proxy``: each listens on a free
port of 127.0.0.1 and serves each connection on a thread of its own).

``ReplyDropper`` forwards each request line to the server and its reply back, except
that for an op named in ``drop`` it lets the server apply the request, then drops the
reply and closes the client's connection: the client sees a lost reply, as when a
network or a process fails after the server acted (with ``early``, the connection is
closed as soon as the request is passed on, while the server may still be working on
it). With ``then_cut``, once those replies are lost every later request is too,
unforwarded (the server unreachable), until ``reconnect``. ``delay(op, seconds)`` holds
each reply to ``op`` that long before passing it on (a slow link, not a failure).
Requests and replies are passed through as bytes; each request is also kept decoded
(``requests``), for a test to read what a client sent.

``Recorder`` passes bytes both ways as they are (TLS too) and keeps a copy of them.
"""
from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections import Counter


class Proxy:
    """Listens on 127.0.0.1 (a free port) and serves each connection with ``handle`` (its
    socket), on a thread of its own, on the way to ``upstream``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy.handle(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = self.server.server_address[:2]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def addr(self) -> str:
        return "%s:%d" % self.address

    def handle(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ReplyDropper(Proxy):
    """Forwards request lines to ``upstream`` and their replies back, losing or holding
    the replies it is told to (see the module doc)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(upstream)
        self.to_drop: Counter[str] = Counter()  # op -> replies still to drop
        self.dropped: Counter[str] = Counter()  # op -> replies dropped so far
        self.cut_after: set[str] = set()  # ops whose last drop cuts the proxy off
        self.early: set[str] = set()  # ops whose dropped replies are not waited for
        self.cut = False  # every request is lost, unforwarded
        self.delays: dict[str, float] = {}  # op -> seconds each reply is held
        self.requests: list[dict] = []  # every JSON request forwarded, decoded

    def drop(self, op: str, times: int = 1, then_cut: bool = False,
             early: bool = False) -> None:
        """Lose the next ``times`` replies to ``op`` (after the server applied it; with
        ``early``, without waiting for the reply); with ``then_cut``, every request after
        the last of them too (without forwarding it)."""
        with self.lock:
            self.to_drop[op] += times
            if then_cut:
                self.cut_after.add(op)
            if early:
                self.early.add(op)

    def delay(self, op: str, seconds: float) -> None:
        """Hold every reply to ``op`` for ``seconds`` before passing it on (0: no more)."""
        with self.lock:
            self.delays[op] = seconds

    def reconnect(self) -> None:
        """Forward requests again after a cut."""
        with self.lock:
            self.cut = False

    def _take_drop(self, op: str) -> bool:
        with self.lock:
            if self.to_drop[op] <= 0:
                return False
            self.to_drop[op] -= 1
            self.dropped[op] += 1
            if self.to_drop[op] == 0 and op in self.cut_after:
                self.cut_after.discard(op)
                self.cut = True
            return True

    def handle(self, client: socket.socket) -> None:
        rfile = client.makefile("rb")
        with socket.create_connection(self.upstream) as server:
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            replies = server.makefile("rb")
            for line in rfile:
                if self.cut:
                    return
                try:
                    request = json.loads(line)
                except ValueError:
                    request = {}
                if isinstance(request, dict):
                    self.requests.append(request)
                op = request.get("op") if isinstance(request, dict) else None
                server.sendall(line)
                if op in self.early and self._take_drop(op):
                    client.shutdown(socket.SHUT_RDWR)
                    return
                reply = replies.readline()
                if not reply:
                    return
                if isinstance(op, str) and self._take_drop(op):
                    client.shutdown(socket.SHUT_RDWR)
                    return
                if self.delays.get(op):
                    time.sleep(self.delays[op])
                client.sendall(reply)


class Recorder(Proxy):
    """A byte proxy that keeps a copy of everything it passes, both ways: forwards each
    connection to ``upstream`` as it is, bytes in, bytes out (TLS included, which a line
    proxy would break). ``seen()`` is every byte so far, from clients and from the server,
    joined."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(upstream)
        self.chunks: list[bytes] = []
        self.connections = 0

    def seen(self) -> bytes:
        with self.lock:
            return b"".join(self.chunks)

    def handle(self, client: socket.socket) -> None:
        with self.lock:
            self.connections += 1
        with socket.create_connection(self.upstream) as server:
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            back = threading.Thread(target=self._pump, args=(server, client), daemon=True)
            back.start()
            self._pump(client, server)
            back.join()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy ``source`` to ``sink`` until either end closes; then close both ways."""
        try:
            while chunk := source.recv(65536):
                with self.lock:
                    self.chunks.append(chunk)
                sink.sendall(chunk)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

