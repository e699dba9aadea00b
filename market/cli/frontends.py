"""How a CLI reaches its frontends: one or several of one role, checked by ``Hello``.

Frontends are stateless, so a CLI given several (``--server`` repeated) sticks to
one and, when it stops answering, moves to the next with the same session. Every
write (``WRITES``) carries a fresh ``idempotency_key`` (contract §11), one per
command, kept through its resends: when its reply is lost (``NoAnswer``) or the
frontend answers ``deadline_exceeded``, the same request with the same key goes
to the same frontend once more, then to each other one, until an answer tells the
outcome; a resend never applies it twice. Anything else (reads, ``Login``,
``Logout``) changes nothing a resend could double and is asked again of the next
frontend. A request that never left (``NotSent``) or was answered ``unavailable``
(nothing changed) goes to the next frontend too. Before anything else goes to a
frontend, its ``Hello`` must name this CLI's role (``WrongServer`` otherwise).

It speaks of them as "the buyer frontend at HOST:PORT" (the glossary's word).
A move to another frontend is told through ``on_move`` (one line for a person).

With ``tls`` (a client context: ``--tls-ca``) every frontend is dialled over TLS and must
show a certificate of that CA valid for the host dialled; without it, plaintext. Either
way a mismatch is ``NotSecure``, one sentence naming the cause and the flag: no fallback.

Exceptions, beyond ``market.net.client``'s::

    ApiError
      NotSent      no frontend could be reached: the request never left
    CliError       one sentence for a person (``send`` raises only these)
      WrongServer  a server that is not a frontend of this role
        NotSecure  TLS at one end only, or a certificate that fails the checks
      SessionEnded the frontend no longer knows the session
      Unsure       a write whose outcome no frontend could tell
"""
from __future__ import annotations

import ssl
from typing import Callable

from market.config import CLI_TIMEOUT
from market.errors import (
    TRANSIENT_ERRORS,
    CliError,
    NoAnswer,
    NotSecure,
    NotSent,
    SessionEnded,
    TlsError,
    Unsure,
    WrongServer,
)
from market.keys import fresh_key
from market.net.client import Client, Connection, Health
from market.net.tls import PLAINTEXT_AT_TLS_PORT
from protocol import ApiError, encode, envelope, result_of

SERVICE_NAMES = {"seller": "seller frontend", "buyer": "buyer frontend",
                 "product_db": "product database", "customer_db": "customer database"}
# The ops that change something a resend could do twice: each is sent with a key
# (contract §11). Reads, Hello, Login and Logout take none.
WRITES = frozenset({"CreateAccount", "RegisterItemForSale", "ChangeItemPrice",
                    "UpdateUnitsForSale", "AddItemToCart", "RemoveItemFromCart", "SaveCart",
                    "ClearCart", "MakePurchase", "ProvideFeedback"})


def new_key(op: str) -> str | None:
    """The ``idempotency_key`` of one command sending ``op``: fresh for a write, else None."""
    return fresh_key() if op in WRITES else None







class CliClient(Client):
    """A ``Client`` that tells 'never sent' (``NotSent``) apart from 'sent, no answer',
    sends a write's key, and reads amounts exactly (``Decimal``), so any total shows to
    the cent."""

    exact = True
    peer = "The frontend"

    def request(self, op: str, args: dict, session: str | None, key: str | None) -> dict:
        """Send one request, with ``key`` as its ``idempotency_key`` if there is one. Only
        a request without a key is sent once more here when its reply is lost: a write's
        resends are ``Frontends``' to make."""
        message = envelope(op, args, session)
        if key is not None:
            message["idempotency_key"] = key
        payload = encode(message)
        return result_of(self._decode(self.exchange(lambda: payload, read=key is None)))

    def _checkout(self, peek: bool = True) -> Connection:
        try:
            return super()._checkout(peek)
        except ApiError as error:
            if isinstance(error.__cause__, TlsError):
                raise self.not_secure(error.__cause__) from None
            raise NotSent(error.code, error.message) from None

    def exchange(self, payload: Callable[[], bytes], read: bool = False,
                 keyed: bool = False) -> bytes:
        try:
            return super().exchange(payload, read, keyed)
        except ApiError as error:
            if isinstance(error.__cause__, TlsError):
                raise self.not_secure(error.__cause__) from None
            raise

    def not_secure(self, why: TlsError) -> NotSecure:
        """One sentence: the frontend (``health.what``) failed the TLS checks, and why."""
        return NotSecure(f"Cannot talk to {self.health.what} securely: {why}; nothing was "
                         "sent.")


class Frontends:
    """The frontends of ``role`` a CLI may use, in order of preference."""

    def __init__(self, role: str, addresses: list[tuple[str, int]],
                 timeout: float = CLI_TIMEOUT, tls: ssl.SSLContext | None = None) -> None:
        self.role = role
        self.addresses = addresses
        self.tls = tls
        self.clients = [CliClient(address, timeout, tls=tls,
                                  health=Health(f"the {role} frontend at {host}:{port}"))
                        for address in addresses for host, port in [address]]
        self.checked = [False] * len(addresses)  # said Hello as a frontend of ``role``
        self.current = 0  # the one in use
        self.on_move: Callable[[str], None] = lambda note: None

    def where(self, index: int) -> str:
        host, port = self.addresses[index]
        return f"{host}:{port}"

    def describe(self, index: int | None = None) -> str:
        """'the buyer frontend at HOST:PORT' (the one in use by default)."""
        return f"the {self.role} frontend at {self.where(self.current if index is None else index)}"

    def listed(self) -> str:
        """'HOST:PORT, HOST:PORT': every frontend given."""
        return ", ".join(self.where(index) for index in range(len(self.addresses)))

    def unreachable(self) -> str:
        """Which frontends could not be reached, for a person."""
        if len(self.addresses) == 1:
            return f"Cannot reach {self.describe()}; is it running?"
        return (f"None of the {len(self.addresses)} {self.role} frontends answers "
                f"({self.listed()}).")

    def silent(self) -> str:
        """Which frontends sent no reply, for a person."""
        if len(self.addresses) == 1:
            return f"No answer from {self.describe()}"
        return (f"No answer from any of the {len(self.addresses)} {self.role} frontends "
                f"({self.listed()})")

    def send(self, op: str, args: dict, session: str | None, check: str = "") -> dict:
        """``call``, with every failure as one sentence for a person: ``CliError``
        (``SessionEnded`` when the session is gone, ``WrongServer``, ``Unsure`` when no
        frontend could tell a write's outcome: ``check`` is the command that shows it)."""
        try:
            return self.call(op, args, session)
        except NotSent:
            raise CliError(f"{self.unreachable()} Nothing was sent; try again once it is "
                           "back.") from None
        except NoAnswer:
            if op not in WRITES:
                raise CliError(f"{self.silent()}; try again.") from None
            raise Unsure(f"{self.silent()}, so it may or may not have happened; "
                         f"{look(check)}") from None
        except ApiError as error:
            if error.code == "deadline_exceeded":
                raise Unsure("The marketplace could not confirm whether it took effect (one "
                             f"of its databases did not answer); {look(check)}") from None
            raise explain(error) from None

    def call(self, op: str, args: dict, session: str | None) -> dict:
        """Send ``op`` to the frontend in use, then to the others in turn until one answers.

        A write goes with a fresh key; when its reply is lost or the answer is
        ``deadline_exceeded``, it is sent again with that key to the same frontend once,
        then to the next. ``unavailable`` (nothing changed) and a request that could not
        be sent move on to the next frontend at once; so does a lost reply to anything
        else. Raises, when none told the outcome: ``deadline_exceeded`` (an ``ApiError``)
        if a write's outcome is unknown and some frontend answered, ``NoAnswer`` if none
        answered at all, else the last answer (``unavailable``), else ``NotSent``. Any
        other answer (an error reply, ``WrongServer``) is raised as it is. Every op a CLI
        sends goes through here.
        """
        first, key = self.current, new_key(op)
        why = "stopped answering"  # what became of the frontend in use, if we move on
        lost: NoAnswer | None = None  # the latest reply lost
        answer: ApiError | None = None  # the latest answer that did not tell the outcome
        unsure: ApiError | None = None  # a deadline_exceeded seen: it stays unknown after
        not_sent: NotSent | None = None
        for index in self.order():
            for _ in (1, 2):
                try:
                    self.check(index)
                    result = self.clients[index].request(op, args, session, key)
                except NotSent as failure:
                    not_sent = failure
                    break
                except NoAnswer as failure:
                    lost = failure
                except ApiError as error:
                    if error.code not in TRANSIENT_ERRORS:
                        raise  # the outcome
                    answer = error
                    if error.code == "deadline_exceeded":
                        unsure = error
                    if index == first:
                        why = "cannot reach its databases"
                    if error.code == "unavailable":
                        break  # nothing changed: the next frontend may do it
                else:
                    self.current = index
                    if index != first:
                        self.on_move(f"{self.where(first)} {why}; now using "
                                     f"{self.where(index)}.")
                    return result
                if key is None:
                    break  # not a write: ``request`` has asked twice already
        if key is not None and (lost or unsure):
            if answer is None:
                raise lost
            raise ApiError("deadline_exceeded", (unsure or answer).message)
        raise answer or lost or not_sent

    def order(self) -> list[int]:
        """The frontends to try, the one in use first."""
        count = len(self.clients)
        return [(self.current + step) % count for step in range(count)]

    def check(self, index: int | None = None) -> None:
        """Make sure frontend ``index`` (the one in use) is one of ``role`` before sending it
        anything else: ``WrongServer`` if not, ``NotSent`` if it does not answer."""
        index = self.current if index is None else index
        if self.checked[index]:
            return
        try:
            hello = self.clients[index].call("Hello", read=True)
        except NotSent:
            raise
        except NoAnswer as failure:
            raise NotSent(failure.code, failure.message) from None
        except ApiError as error:
            if error.message == PLAINTEXT_AT_TLS_PORT:
                raise NotSecure(f"{self.where(index)} speaks TLS only: give this CLI the "
                                "marketplace's CA with --tls-ca FILE (or MARKET_TLS_CA); "
                                "nothing was sent.") from None
            hello = {}
        kind = hello.get("service")
        if kind != self.role:
            what = f"the {SERVICE_NAMES[kind]}" if kind in SERVICE_NAMES else \
                "not a marketplace frontend"
            raise WrongServer(f"{self.where(index)} is {what}, not the {self.role} frontend; "
                              "nothing was sent.")
        self.checked[index] = True

    def close(self) -> None:
        for client in self.clients:
            client.close()


def look(check: str) -> str:
    """What to do about a write whose outcome is unknown: look before doing it again."""
    where = f"check with '{check}'" if check else "check"
    return f"{where} before trying it again."


def explain(error: ApiError) -> CliError:
    """A frontend's error reply as one sentence for a person."""
    if error.code == "invalid_session":
        return SessionEnded("You are not logged in any more (the session ended or timed out); "
                            "log in again.")
    if error.code == "unavailable":
        return CliError("The marketplace cannot reach one of its databases right now; "
                        "try again soon.")
    if error.code == "internal":
        return CliError("The frontend hit an internal error; try again, and report it if it "
                        "persists.")
    return CliError(" ".join(error.message.split()) or "The frontend refused that.")
