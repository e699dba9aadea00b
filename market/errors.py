"""Every exception of the marketplace but the wire's own, and how each error code is treated.

One module for all of them, as httpx's ``_exceptions.py``; the tree::

    Exception
      protocol.ApiError      a failure a client is told: a contract error code, one sentence
        NoAnswer             sent, but no usable reply came (``market.net.client``):
                             ``unavailable`` for a read, ``deadline_exceeded`` for a write
        NotSent              the request never left: its server could not be reached
        NotOneMarket         ``unavailable``: a frontend's two databases belong to
                             different markets (logged for the operator already)
      JournalError           a data directory cannot be loaded; the message names the
                             file and line
      OSError
        ConnectionError
          TlsError           TLS failed: a handshake, a record, or loading the files
                             (``market.net.tls``); the message is one sentence fragment
                             about the other end, naming the flag to change
          EtcdError          etcd did not answer, or refused a request
            Deposed          this process no longer leads its database: no more appends
      CliError               one sentence for the person at a CLI, which then goes on
        WrongServer          the server is not a frontend of the CLI's role (the CLI stops)
          NotSecure          TLS at one end and not the other, or a certificate refused
                             (the CLI stops: retrying cannot help)
        SessionEnded         the frontend no longer knows the session
        Unsure               a write whose outcome no frontend could tell
        Cancelled            the person cancelled the question at hand (Ctrl-C, Enter)

Error replies become a reply line in one place (``market.net.service.Service.respond``);
how each code is treated is decided here, once:

- ``USER_ERRORS``: a user's ordinary mistake, counted and logged at DEBUG like a success
  (contract §13).
- ``TRANSIENT_ERRORS`` (below) are logged at INFO per request: their cause, a database
  that does not answer, is logged once at WARNING by the link to it
  (``market.net.client.Health``), not once per request that meets it. Every other code
  (``too_large``, ``internal``) is for an operator: WARNING and up.
- ``FINAL_ERRORS``: a keyed write's verdict; a resend with the same key is told it again.
- ``TRANSIENT_ERRORS``: nothing was changed, or the outcome is not known yet; the same
  request may succeed later (at another frontend, or once a database answers).
"""
from __future__ import annotations

from protocol import ApiError

USER_ERRORS = frozenset({"bad_request", "unknown_op", "auth_failed", "invalid_session",
                         "forbidden", "not_found", "conflict", "resource_exhausted"})
FINAL_ERRORS = frozenset({"bad_request", "not_found", "forbidden", "conflict"})
TRANSIENT_ERRORS = frozenset({"unavailable", "deadline_exceeded"})


class NoAnswer(ApiError):
    """No reply came to a request that was sent: ``unavailable`` for a read (nothing
    changed), ``deadline_exceeded`` for a write (it may or may not have been applied;
    a database that did answer ``unavailable`` applied nothing)."""


class NotSent(ApiError):
    """The server could not be reached, so the request never left this process."""


class NotOneMarket(ApiError):
    """``unavailable``: the databases belong to different markets (logged already)."""


class TlsError(ConnectionError):
    """TLS failed (``market.net.tls``): the other end's certificate, ours, a plaintext peer,
    or a file that does not load. The message is a fragment about the other end ("its TLS
    certificate has expired: ..."), naming the flag to change. A ConnectionError, so a
    client's handling of a lost connection covers it."""


class EtcdError(ConnectionError):
    """etcd (``market.storage.etcd``) did not answer, or refused a request."""


class Deposed(EtcdError):
    """This database process no longer holds the leadership of its database in etcd: it
    may not append, and forgets what it applied but could not append."""


class JournalError(Exception):
    """The data directory cannot be loaded; the message names the file and line."""


class CliError(Exception):
    """One sentence to tell the person; the CLI then goes on with the next command."""


class WrongServer(CliError):
    """The server is not a frontend of this CLI's role: the CLI stops (exit status 2)."""


class NotSecure(WrongServer):
    """The frontend and the CLI do not agree on TLS: plaintext at one end, or a certificate
    that fails the checks. The CLI stops (exit status 2), as for a wrong server."""


class SessionEnded(CliError):
    """The frontend no longer knows the session (it ended or timed out)."""


class Unsure(CliError):
    """A write was sent, and no frontend could tell whether it took effect."""


class Cancelled(CliError):
    """Ctrl-C, Ctrl-D or an empty answer at a question: the command at hand is dropped."""

    def __init__(self) -> None:
        super().__init__("Cancelled.")
