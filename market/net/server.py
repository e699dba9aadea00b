"""Serving a ``Service`` over TCP: a thread per connection, a cap on connections, a clean stop.

Class tree, from the request inwards::

    Server (socketserver.ThreadingTCPServer)   accepts, caps connections, drains on stop
      RequestHandler                            one connection: lines in, replies out
        Service.respond                         one line (``market.net.service``)

``serve`` binds, prints the ready line (``READY``) and serves until SIGTERM/SIGINT (with
TLS files, SIGHUP reloads them); ``parse_ready_line`` reads that line back (tests, the
benchmark, run_all.sh).

With ``tls`` (``market.net.tls.TlsFiles``) a server serves TLS only: each connection's
handshake runs in its own thread, under the read timeout, once it is admitted (so it
counts against the cap, and a client that never finishes it holds up no one else).
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import socket
import socketserver
import threading
import time

from market.config import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_TIMEOUT,
    DRAIN_TIMEOUT,
    LISTEN_BACKLOG,
)
from market.net.flags import configure_logging, exit_at_start
from market.net.service import OTHER_OP, Peer, Service
from market.net.sockets import LineReader, set_socket_timeout
from market.net.tls import Complaints, Refused, TlsFiles, answer_tls_at_plaintext_port
from market.net.tls import accept as tls_accept
from protocol import ApiError, encode, error_reply

READY = "{name} ready on {host}:{port}"  # the line a service prints once it serves

log = logging.getLogger(__name__)
logging.getLogger("market").addHandler(logging.NullHandler())  # the CLIs log nothing


class RequestHandler(socketserver.BaseRequestHandler):
    """Serves one connection: many requests, one reply line each, in order."""

    server: "Server"

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A client that stops reading its replies is dropped like a slow sender.
        set_socket_timeout(self.request, socket.SO_SNDTIMEO, self.server.read_timeout)
        self.peer = Peer("%s:%s" % self.client_address[:2])
        self.stream = self.server.opened(self.request, self.peer)  # None: not to be served
        if self.stream is not None:
            self.lines = LineReader(self.stream, self.server.idle_timeout,
                                    self.server.read_timeout)

    def handle(self) -> None:
        if self.stream is None:
            return
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

    def finish(self) -> None:
        if self.stream is not None and self.stream is not self.request:
            self.stream.close()  # a TLS stream's own descriptor (the server closes the rest)

    def _send(self, reply: bytes) -> bool:
        try:
            self.stream.sendall(reply)
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
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 tls: TlsFiles | None = None) -> None:
        self.service = service
        self.tls = tls
        self.complaints = Complaints()  # refused TLS connections, logged without a flood
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.refused = 0  # connections refused at the cap (only the accepting thread adds)
        # Guards ``_open``, the connections being served: never more than
        # ``max_connections``; one leaves when its handler thread ends.
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        service.connections = self.connections
        service.drop_connections = self.drop_connections
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, RequestHandler)
        service.address = self.server_address[:2]

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

    def opened(self, request: socket.socket, peer: Peer):
        """In the connection's own thread, before its first request: the stream to serve it
        on (the socket, or over TLS a ``TlsStream`` after the handshake), or None when it is
        not to be served (logged through ``complaints``). A TLS client at a plaintext port,
        or a plaintext client at a TLS port, is told so in one plaintext line."""
        if self.tls is None:
            set_socket_timeout(request, socket.SO_RCVTIMEO, self.idle_timeout)
            if not answer_tls_at_plaintext_port(request):
                return request
            self.complaints.refused(peer.address, Refused(
                "it opened a TLS handshake at this plaintext port (it was told so; start "
                "this service with --tls-cert, --tls-key and --tls-ca, or the client "
                "without --tls-ca)", "TLS at plaintext"))
            return None
        try:
            return tls_accept(request, self.tls.server, self.read_timeout)
        except Refused as refusal:
            self.complaints.refused(peer.address, refusal)
            return None

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

    def drop_connections(self, how: int = socket.SHUT_RDWR) -> None:
        """End every connection now (a database that stopped being the active one); with
        ``SHUT_RD``, only their read side."""
        with self._lock:
            open_now = list(self._open)
        for request in open_now:
            try:
                request.shutdown(how)
            except OSError:
                pass

    def drain(self, grace: float) -> None:
        """Let every connection finish the request it is on, then end (for a clean stop).

        Shutting the read side makes each handler's next read see end of
        stream, while replies already being computed can still be sent.
        """
        self.drop_connections(socket.SHUT_RD)
        deadline = time.monotonic() + grace
        while self._open and time.monotonic() < deadline:
            time.sleep(0.02)

    def refuse(self, request: socket.socket, client_address) -> None:
        """Answer one ``unavailable`` line and close, without a thread (over TLS, close
        only: a line needs the handshake, which needs a thread)."""
        self.refused += 1
        log.warning("refused %s: %d connections are open", client_address, self.max_connections)
        if self.tls is None:
            error = ApiError("unavailable", "The server has too many connections; retry later.")
            try:
                request.setblocking(False)
                request.send(encode(error_reply(error, None)))
            except OSError:
                pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        log.exception("error serving %s", client_address)


def allow_open_files(count: int) -> None:
    """Raise the soft limit on open files to ``count``, as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(service: Service, args: argparse.Namespace, tls: TlsFiles | None = None) -> None:
    """Bind, print the ready line, serve until SIGTERM/SIGINT, then close cleanly; with
    ``tls``, serve TLS only and reload its files on SIGHUP (for new connections).

    The ready line goes to stdout exactly as ``READY`` says (scripts parse it), and to
    the log, time-stamped, with the pid.
    """
    configure_logging(service.kind, args.log_level)
    # clients (two descriptors each over TLS), database pools, journals
    allow_open_files(3 * args.max_connections + 1024)
    try:
        server = Server((args.host, args.port), service, args.idle_timeout, args.read_timeout,
                        args.max_connections, tls)
    except OSError as exc:
        exit_at_start(f"{service.name}: cannot listen on {args.host}:{args.port}: "
                      f"{exc.strerror}")
    service.start()
    host, port = server.server_address[:2]
    ready = READY.format(name=service.name, host=host, port=port)
    print(ready, flush=True)
    log.info("%s (pid %d)%s", ready, os.getpid(),
             "" if tls is None else f", TLS only ({tls.cert}"
             + (", clients need a certificate of the CA" if tls.mutual else "") + ")")

    def stop(signum, frame) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if tls is not None:
        signal.signal(signal.SIGHUP, lambda signum, frame: threading.Thread(
            target=tls.reload, daemon=True).start())
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
