"""Encryption in transit (contract §14): every TLS setting of the marketplace, in one place.

``TlsFiles``    a service's ``--tls-cert``, ``--tls-key`` and ``--tls-ca``, loaded into one
                context for serving (``server``) and one for dialling (``client``, which
                presents the service's own certificate: a database asks for it);
                ``reload`` (SIGHUP) loads the files anew for new connections and keeps the
                contexts it had when one fails to load
``client_context``  what a CLI, status.sh or the benchmark dials with: the CA alone
``accept``      a server's side of a new connection, in that connection's own thread:
                plaintext at a TLS port is told so in one JSON line; else the handshake,
                within a deadline
``connect``     a client's side: the handshake, verifying the server's certificate against
                the CA and the host name dialled
``TlsStream``   the TLS connection both return: ``recv``, ``sendall``, ``makefile``

How a stream keeps the kernel timeouts: the services use blocking sockets with kernel
timeouts (``SO_RCVTIMEO``, ``market.net.sockets``), and an ``ssl.SSLSocket`` in blocking
mode retries a timed-out read forever (it waits again), while one in timeout mode polls
before every read. So the stream's socket is told it is non-blocking while its descriptor
blocks: one ``SSL_read`` waits in the kernel's ``recv`` and a kernel timeout ends it
(``SSLWantReadError``), as a plaintext read. (Memory BIOs would keep the timeouts too, but
each record would cost a ``recv`` and an ``SSL_read``, two releases of the GIL instead of
one: among many connection threads each release hands it over, which about doubled TLS's
cost.) The stream has a descriptor of its own (``os.dup``), so the server can still shut
the connection's socket down from another thread (``drop_connections``, ``drain``). The
contexts send no session tickets (connections are pooled and long-lived): nothing arrives
on an idle connection, so a pool's liveness peek (``Connection.looks_closed``) reads the
socket as in plaintext.

Every failure is explained in one sentence fragment about the other end ("its TLS
certificate has expired ..."), naming the flag to change: ``TlsError`` on a client,
``Refused`` on a server.
"""
from __future__ import annotations

import errno
import io
import logging
import os
import socket
import ssl
import threading
import time
from typing import Callable

from market.config import TLS_COMPLAINT_EVERY
from market.errors import TlsError
from market.net.sockets import RECV_SIZE, set_socket_timeout

log = logging.getLogger(__name__)

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
HANDSHAKE_RECORD = 0x16  # the first byte of every TLS connection (a handshake record)
MAKE_CERTS = "./make_certs.sh"
# What a TLS port answers, in plaintext, to a client that speaks plaintext to it (a JSON
# error line, so a client of the wire reads it as one), and how such a client knows it.
PLAINTEXT_AT_TLS_PORT = ("This port speaks TLS only: connect with TLS, verifying the "
                         "server with the marketplace's CA (--tls-ca FILE or MARKET_TLS_CA).")
PLAINTEXT_REPLY = ('{"ok":false,"error":{"code":"bad_request","message":"%s"},"id":null}\n'
                   % PLAINTEXT_AT_TLS_PORT).encode()
# What a plaintext port answers to a TLS handshake: the same kind of line, which the TLS
# client reads as a record of no known version ("it answered in plaintext").
TLS_AT_PLAINTEXT_PORT = ("This port speaks plaintext: it was started without --tls-cert, "
                         "--tls-key and --tls-ca.")
TLS_AT_PLAINTEXT_REPLY = ('{"ok":false,"error":{"code":"bad_request","message":"%s"},'
                          '"id":null}\n' % TLS_AT_PLAINTEXT_PORT).encode()

# OpenSSL's certificate verification codes (X509_V_ERR_*) that a sentence below names.
EXPIRED = 10
NOT_YET_VALID = 9
HOSTNAME_MISMATCH = 62
IP_MISMATCH = 64
UNKNOWN_ISSUER = frozenset({2, 18, 19, 20, 21})
# Reasons (``ssl.SSLError.reason``) of a record that is no TLS at all: plaintext.
NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST",
                     "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE", "HTTPS_PROXY_REQUEST",
                     "RECORD_TOO_LARGE"})


class Context(ssl.SSLContext):
    """An ``ssl.SSLContext`` that remembers the files it was loaded from, for the
    sentences that explain a failure."""

    ca_file = ""
    cert_file = ""


# -- the contexts -----------------------------------------------------------------------

def server_context(cert: str, key: str, ca: str, mutual: bool) -> Context:
    """Serving: TLS 1.2 or later with ``cert``; with ``mutual`` (a database), every client
    must present a certificate signed by ``ca``. Raises ``TlsError`` naming the file."""
    context = Context(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.num_tickets = 0  # nothing unasked on an idle connection (see the module doc)
    _load_chain(context, cert, key)
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        _load_ca(context, ca)
    return context


def client_context(ca: str, cert: str = "", key: str = "") -> Context:
    """Dialling: TLS 1.2 or later, the server's certificate verified against ``ca`` (only
    that CA) and the host name dialled; presenting ``cert`` when given."""
    context = Context(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    context.minimum_version = MINIMUM_VERSION
    _load_ca(context, ca)
    if cert:
        _load_chain(context, cert, key)
    return context


def _load_ca(context: Context, ca: str) -> None:
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TlsError(f"cannot load the CA certificate {ca} (--tls-ca): "
                       f"{_why_not_loaded(exc)}") from None
    context.ca_file = ca


def _load_chain(context: Context, cert: str, key: str) -> None:
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError, ValueError) as exc:
        if getattr(exc, "reason", "") == "KEY_VALUES_MISMATCH":
            why = f"the key {key} (--tls-key) is not the key of the certificate {cert}"
        else:
            why = (f"cannot load the certificate {cert} (--tls-cert) with the key {key} "
                   f"(--tls-key): {_why_not_loaded(exc)}")
        raise TlsError(why) from None
    context.cert_file = cert


def _why_not_loaded(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, ssl.SSLError):
        return exc.strerror.lower()
    reason = getattr(exc, "reason", None)
    return f"not a PEM file of the right kind ({reason})" if reason else str(exc)


class TlsFiles:
    """A service's TLS files, loaded: ``server`` to serve with, ``client`` to dial other
    services with (presenting the same certificate). ``mutual``: clients must present a
    certificate signed by the CA (a database). ``reload`` loads the files anew."""

    def __init__(self, cert: str, key: str, ca: str, mutual: bool) -> None:
        self.cert, self.key, self.ca, self.mutual = cert, key, ca, mutual
        self._listeners: list[Callable[["TlsFiles"], None]] = []
        self.server, self.client = self._load()  # raises TlsError
        self._warn_if_readable()

    def _load(self) -> tuple[Context, Context]:
        return (server_context(self.cert, self.key, self.ca, self.mutual),
                client_context(self.ca, self.cert, self.key))

    def on_reload(self, listener: Callable[["TlsFiles"], None]) -> None:
        """Call ``listener(self)`` after each reload that loaded new contexts."""
        self._listeners.append(listener)

    def reload(self) -> bool:
        """Load the files again, for connections made from now on (those open keep theirs);
        if one fails to load, keep the contexts loaded before and log a WARNING."""
        try:
            server, client = self._load()
        except TlsError as exc:
            log.warning("TLS files not reloaded, the ones loaded before stay in use: %s", exc)
            return False
        self.server, self.client = server, client
        for listener in self._listeners:
            listener(self)
        log.info("TLS files reloaded: %s, %s, %s; new connections use them",
                 self.cert, self.key, self.ca)
        self._warn_if_readable()
        return True

    def _warn_if_readable(self) -> None:
        try:
            mode = os.stat(self.key).st_mode
        except OSError:
            return
        if mode & 0o077:
            log.warning("the TLS key %s may be read by other users (mode %o): chmod 600 %s",
                        self.key, mode & 0o777, self.key)


# -- one connection ---------------------------------------------------------------------

class TlsStream:
    """A TLS connection over a blocking socket with kernel timeouts (see the module doc).

    ``recv`` and ``sendall`` behave as the socket's: a kernel timeout raises
    ``BlockingIOError`` (``TimeoutError`` for a send), end of stream (with or without the
    peer's close_notify) is ``b""``; a TLS failure after the handshake (an alert) raises
    ``TlsError`` on a client. ``setsockopt`` and ``fileno`` are the socket's, so
    ``set_socket_timeout`` and ``LineReader`` take a stream as they take a socket.
    ``close`` closes both descriptors (the socket's and the stream's own).
    """

    def __init__(self, sock: socket.socket, tls: ssl.SSLSocket,
                 explain: Callable[[ssl.SSLError], str]) -> None:
        self.sock = sock
        self.tls = tls
        self._explain = explain
        self.setsockopt = sock.setsockopt
        self.fileno = sock.fileno
        self.pending = tls.pending  # decrypted bytes not read yet

    def recv(self, size: int) -> bytes:
        try:
            return self.tls.recv(size)
        except ssl.SSLError as exc:
            return self._failed(exc)

    def recv_into(self, buffer) -> int:
        """Like ``recv``, into ``buffer`` (decrypted there: no copy)."""
        try:
            return self.tls.recv_into(buffer)
        except ssl.SSLError as exc:
            return len(self._failed(exc))

    def _failed(self, exc: ssl.SSLError) -> bytes:
        if isinstance(exc, (ssl.SSLWantReadError, ssl.SSLWantWriteError)):
            raise BlockingIOError(errno.EAGAIN, "timed out") from None  # the kernel timeout
        if isinstance(exc, (ssl.SSLZeroReturnError, ssl.SSLEOFError)):
            return b""
        raise TlsError(self._explain(exc)) from None

    def sendall(self, data: bytes) -> None:
        try:
            self.tls.sendall(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            raise TimeoutError("the peer reads nothing") from None
        except (ssl.SSLError, ConnectionError) as exc:
            why = self._alert() or exc  # the peer's reason to close, if it sent one
            if isinstance(why, ssl.SSLError):
                raise TlsError(self._explain(why)) from None
            raise

    def _alert(self) -> ssl.SSLError | None:
        """After a write failed: the alert the peer sent before it closed, if one came (a
        server that refuses our certificate under TLS 1.3 says so after our handshake)."""
        try:
            self.tls.recv(1)
        except ssl.SSLError as exc:
            if not isinstance(exc, (ssl.SSLWantReadError, ssl.SSLEOFError)):
                return exc
        except OSError:
            pass
        return None

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        """A buffered reader of the decrypted bytes (for ``protocol.read_line``)."""
        if mode != "rb":
            raise ValueError("a TLS stream is read in 'rb' mode only")
        return io.BufferedReader(_Reader(self), RECV_SIZE)

    def getpeercert(self) -> dict | None:
        return self.tls.getpeercert()

    def version(self) -> str | None:
        return self.tls.version()

    def close(self) -> None:
        self.tls.close()
        self.sock.close()


class _Reader(io.RawIOBase):
    """The raw side of ``TlsStream.makefile``: a kernel timeout reads as no data (None),
    as ``socket.SocketIO`` has it, so a reply that never comes reads as end of stream."""

    def __init__(self, stream: TlsStream) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        try:
            return self.stream.recv_into(buffer)
        except BlockingIOError:
            return None


def _handshake(sock: socket.socket, context: ssl.SSLContext, timeout: float,
               **options) -> ssl.SSLSocket:
    """The handshake on a second descriptor of ``sock`` within ``timeout`` seconds (a
    ``socket.timeout`` past it, ConnectionError if the peer closes, ``ssl.SSLError`` if
    it fails: the alert that says why goes to the peer first); then the kernel
    timeouts' mode (see the module doc): the descriptor blocks, ``ssl`` takes it for
    non-blocking, so a kernel timeout ends an ``SSL_read`` with ``SSLWantReadError``."""
    tls = context.wrap_socket(socket.socket(fileno=os.dup(sock.fileno())),
                              do_handshake_on_connect=False, **options)
    try:
        tls.settimeout(timeout)
        tls.do_handshake()
        tls.setblocking(False)
        os.set_blocking(tls.fileno(), True)
    except BaseException:
        tls.close()
        raise
    return tls


def connect(sock: socket.socket, context: ssl.SSLContext, hostname: str,
            timeout: float) -> TlsStream:
    """The client's side of the handshake on a connected blocking ``sock`` within
    ``timeout`` seconds: the server's certificate must be signed by the context's CA and
    be valid for ``hostname``, the name dialled. Raises ``TlsError`` (one sentence about
    the server), or OSError as connecting does. The socket's receive timeout is left
    changed: set it again after."""
    explain = lambda exc: explain_at_client(exc, context, hostname)  # noqa: E731
    try:
        tls = _handshake(sock, context, timeout, server_hostname=hostname.strip("[]"))
    except ssl.SSLError as exc:
        raise TlsError(explain(exc)) from None
    except ConnectionError:
        raise TlsError(CLOSED_IN_HANDSHAKE) from None
    return TlsStream(sock, tls, explain)


CLOSED_IN_HANDSHAKE = ("it closed the connection during the TLS handshake (it may be over its "
                       "connection limit, or refuse our TLS settings: its log says which)")


class Refused(Exception):
    """A connection a server did not serve: the message is the sentence fragment about the
    client for the log; ``cause`` groups such refusals for ``Complaints``; ``quiet`` ones
    (a client that closed or stayed silent) are not an operator's matter."""

    def __init__(self, message: str, cause: str, quiet: bool = False) -> None:
        super().__init__(message)
        self.cause = cause
        self.quiet = quiet


def first_byte(sock: socket.socket) -> int | None:
    """The first byte the client sent, without taking it (None at end of stream); waits
    as long as the socket's receive timeout (raises ``BlockingIOError`` past it)."""
    start = sock.recv(1, socket.MSG_PEEK)
    return start[0] if start else None


def is_client_hello(start: bytes) -> bool:
    """Whether the first bytes of a connection are a TLS ClientHello: a handshake record
    (0x16) of version 3.x (SSL 3 to TLS 1.3 all say 3.0 to 3.4 there) holding a ClientHello
    (1). A line of JSON never starts so; a line of junk that happened to would be taken
    for TLS, which takes six given bytes in a row."""
    return (len(start) >= 6 and start[0] == HANDSHAKE_RECORD and start[1] == 3
            and start[2] <= 4 and start[5] == 1)


def accept(sock: socket.socket, context: ssl.SSLContext, timeout: float) -> TlsStream:
    """The server's side of a new connection on a blocking ``sock``, within ``timeout``
    seconds: a client speaking plaintext is answered ``PLAINTEXT_REPLY`` (in plaintext);
    then the handshake (a database verifies the client's certificate). Raises ``Refused``.
    The socket's receive timeout is left changed: set it again after."""
    set_socket_timeout(sock, socket.SO_RCVTIMEO, timeout)
    deadline = time.monotonic() + timeout
    try:
        start = first_byte(sock)
    except OSError:
        raise Refused(f"it sent nothing within {timeout:g} s", "silent", quiet=True) from None
    if start is None:
        raise Refused("it closed the connection before the TLS handshake", "closed", quiet=True)
    if start != HANDSHAKE_RECORD:
        try:
            sock.sendall(PLAINTEXT_REPLY)
        except OSError:
            pass
        raise Refused("it speaks plaintext to this TLS port (it was told so; the CLIs need "
                      "--tls-ca, the frontends --tls-cert, --tls-key and --tls-ca)", "plaintext")
    closed = Refused("it closed the connection during the TLS handshake", "closed", quiet=True)
    try:
        tls = _handshake(sock, context, max(deadline - time.monotonic(), 0.001),
                         server_side=True)
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # before SSLError: they are ones
        raise closed from None
    except ssl.SSLError as exc:
        why, cause = explain_at_server(exc, context)
        raise Refused(why, cause) from None
    except TimeoutError:
        raise Refused(f"it did not finish the TLS handshake within {timeout:g} s", "silent",
                      quiet=True) from None
    except OSError:  # reset, or closed
        raise closed from None
    return TlsStream(sock, tls, lambda exc: f"TLS failed: {exc.reason}")


def answer_tls_at_plaintext_port(sock: socket.socket) -> bool:
    """On a plaintext port: if the client opened with a TLS handshake, answer it
    ``TLS_AT_PLAINTEXT_REPLY`` (its TLS library reads that as plaintext) and return True.
    Waits for the client's first byte as long as the socket's receive timeout."""
    try:
        if not is_client_hello(sock.recv(6, socket.MSG_PEEK)):
            return False
        sock.sendall(TLS_AT_PLAINTEXT_REPLY)
    except OSError:
        return False
    return True


# -- one sentence for each failure -------------------------------------------------------

def explain_at_client(exc: ssl.SSLError, context: ssl.SSLContext, hostname: str) -> str:
    """Why the server at ``hostname`` failed our TLS checks (or we failed its), as a
    sentence fragment about the server ("its TLS certificate ..."), naming the flag."""
    ca = getattr(context, "ca_file", "") or "the CA file"
    cert = getattr(context, "cert_file", "")
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code == EXPIRED:
            return ("its TLS certificate has expired: make it a new one (./make_certs.sh) "
                    "and send it SIGHUP to load it")
        if code == NOT_YET_VALID:
            return "its TLS certificate is not valid yet (is one of the clocks wrong?)"
        if code in (HOSTNAME_MISMATCH, IP_MISMATCH):
            return (f"its TLS certificate is not valid for {hostname}, the name dialled: dial "
                    f"a name it lists, or remake it with {MAKE_CERTS} {hostname}")
        if code in UNKNOWN_ISSUER:
            return (f"its TLS certificate is not signed by the CA in {ca} (--tls-ca or "
                    "MARKET_TLS_CA must name the CA that signed it)")
        return f"its TLS certificate was refused: {exc.verify_message}"
    reason = exc.reason or ""
    if reason in NOT_TLS:
        return ("it does not speak TLS (it answered in plaintext): start it with --tls-cert, "
                "--tls-key and --tls-ca, or leave out --tls-ca here")
    ours = f"our TLS certificate {cert} (--tls-cert)" if cert else "our TLS certificate"
    if reason.endswith("ALERT_UNKNOWN_CA"):
        return f"it refused {ours}: it is not signed by the CA it trusts (its --tls-ca)"
    if reason.endswith("ALERT_CERTIFICATE_EXPIRED"):
        return (f"it refused {ours}: it has expired; make a new one (./make_certs.sh) and "
                "send this process SIGHUP")
    if reason.endswith("CERTIFICATE_REQUIRED") or reason.endswith("HANDSHAKE_FAILURE") \
            and not cert:
        return "it asks for a TLS client certificate: give ours with --tls-cert and --tls-key"
    if "ALERT" in reason:
        return f"it refused the TLS handshake ({exc.reason.lower().replace('_', ' ')})"
    if isinstance(exc, ssl.SSLEOFError):
        return CLOSED_IN_HANDSHAKE
    return f"the TLS handshake failed: {reason.lower().replace('_', ' ') or exc}"


def explain_at_server(exc: ssl.SSLError, context: ssl.SSLContext) -> tuple[str, str]:
    """Why a client failed our TLS checks (or we failed its): a sentence fragment about the
    client ("its TLS certificate ..."), naming the flag, and a short cause."""
    ca = getattr(context, "ca_file", "") or "our CA"
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code == EXPIRED:
            return ("its TLS certificate has expired (it must get a new one: "
                    "./make_certs.sh, then SIGHUP)", "its certificate expired")
        if code in UNKNOWN_ISSUER:
            return (f"its TLS certificate is not signed by the CA in {ca} (our --tls-ca)",
                    "its certificate is of another CA")
        return f"its TLS certificate was refused: {exc.verify_message}", "its certificate"
    reason = exc.reason or ""
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return ("it sent no TLS client certificate (a frontend needs --tls-cert and "
                "--tls-key)", "no client certificate")
    if reason.endswith("ALERT_UNKNOWN_CA"):
        return ("it does not trust our TLS certificate: its --tls-ca is not the CA that "
                "signed our --tls-cert", "our CA unknown to it")
    if reason.endswith("ALERT_BAD_CERTIFICATE"):
        return ("it refused our TLS certificate (not valid for the name it dialled? our "
                "--tls-cert must list it)", "our certificate refused")
    if reason.endswith("ALERT_CERTIFICATE_EXPIRED"):
        return ("it refused our TLS certificate: it has expired (make a new --tls-cert "
                "with ./make_certs.sh, then send SIGHUP)", "our certificate expired")
    if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"):
        return "it offers no TLS version from 1.2 up", "old TLS"
    return (f"the TLS handshake failed: {reason.lower().replace('_', ' ') or exc}",
            reason or "handshake")


class Complaints:
    """The WARNINGs of refused connections, each cause logged at once, then at most once
    per ``every`` seconds with how many more there were: a misconfigured client that
    reconnects in a loop must not flood the log."""

    def __init__(self, every: float = TLS_COMPLAINT_EVERY) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # cause -> time.monotonic() of its latest line
        self._since: dict[str, int] = {}  # cause -> refusals not logged since

    def refused(self, peer: str, refusal: Refused) -> None:
        if refusal.quiet:
            log.debug("connection from %s not served: %s", peer, refusal)
            return
        now = time.monotonic()
        with self._lock:
            last = self._last.get(refusal.cause)
            if last is not None and now - last < self.every:
                self._since[refusal.cause] = self._since.get(refusal.cause, 0) + 1
                return
            self._last[refusal.cause] = now
            more = self._since.pop(refusal.cause, 0)
        log.warning("refused a TLS connection from %s: %s%s", peer, refusal,
                    f" ({more} more like it since the last such line)" if more else "")
