"""The deployment's shared secret: read from its file, and proven without crossing the wire.

A database challenges each connection (a random nonce in its ``Hello``); the client
answers with ``proof(secret, challenge)``, an HMAC-SHA256 (``Authenticate``), so the
secret itself never crosses the wire. ``Handshake`` is the database's side.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets

from market.net.flags import exit_at_start
from market.net.service import Peer
from protocol import ApiError

MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_hex(32))' > FILE; chmod 600 FILE"

log = logging.getLogger(__name__)


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


def proof(secret: bytes, challenge: bytes) -> str:
    """What proves knowledge of ``secret`` for one ``challenge``: HMAC-SHA256, hex."""
    return hmac.new(secret, challenge, hashlib.sha256).hexdigest()


class Handshake:
    """A database's side of the proof: a fresh challenge in each ``Hello``, the answer checked
    by ``Authenticate``; the connection (``Peer``) remembers that it proved the secret. Without
    a secret every connection is let in (the open mode, loopback only)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret

    def challenge(self, peer: Peer) -> dict:
        """What ``Hello`` adds: a new challenge for this connection (nothing without a secret)."""
        if self.secret is None:
            return {}
        peer.challenge = secrets.token_bytes(32)
        return {"challenge": peer.challenge.hex()}

    def authenticate(self, peer: Peer, answer: str) -> None:
        """Mark the connection proven if ``answer`` proves the secret, else ``forbidden``."""
        if self.secret is None or not peer.challenge or not hmac.compare_digest(
                answer.encode("utf-8", "replace"), proof(self.secret, peer.challenge).encode()):
            raise ApiError("forbidden", "Wrong proof of the deployment secret (say Hello first).")
        peer.authenticated, peer.challenge = True, b""

    def admits(self, peer: Peer) -> bool:
        """Whether the connection may use every op (it proved the secret, or none is set)."""
        return self.secret is None or peer.authenticated
