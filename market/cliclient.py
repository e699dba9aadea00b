"""How a CLI reaches its frontends: one or several of one role, checked by ``Hello``.

Frontends are stateless, so a CLI given several (``--server`` repeated) sticks to
one and, when it stops answering, moves to the next with the same session. A
request that never left (``NotSent``) is sent to the next frontend; a read
whose reply was lost is asked again there; a change whose reply was lost is
never resent (``NoAnswer``). Before anything else goes to a frontend, its
``Hello`` must name this CLI's role (``WrongServer`` otherwise).

It speaks of them as "the buyer frontend at HOST:PORT" (the glossary's word).
A move to another frontend is told through ``on_move`` (one line for a person).

Exceptions, beyond ``market.client``'s::

    ApiError
      NotSent      no frontend could be reached: the request never left
    CliError       one sentence for a person (``send`` raises only these)
      WrongServer  a server that is not a frontend of this role
      SessionEnded the frontend no longer knows the session
"""
from __future__ import annotations

from typing import Callable

from market.client import Client, Connection, NoAnswer
from market.config import CLI_TIMEOUT
from protocol import ApiError

SERVICE_NAMES = {"seller": "seller frontend", "buyer": "buyer frontend",
                 "product_db": "product database", "customer_db": "customer database"}


class CliError(Exception):
    """One sentence to tell the person; the CLI then goes on with the next command."""


class WrongServer(CliError):
    """The server is not a frontend of this CLI's role: the CLI stops (exit status 2)."""


class SessionEnded(CliError):
    """The frontend no longer knows the session (it ended or timed out)."""


class NotSent(ApiError):
    """The frontend could not be reached, so the request never left this process."""


class CliClient(Client):
    """A ``Client`` that tells 'never sent' (``NotSent``) apart from 'sent, no answer',
    and reads amounts exactly (``Decimal``), so any total shows to the cent."""

    exact = True
    peer = "The frontend"

    def _checkout(self) -> Connection:
        try:
            return super()._checkout()
        except ApiError as error:
            raise NotSent(error.code, error.message) from None


class Frontends:
    """The frontends of ``role`` a CLI may use, in order of preference."""

    def __init__(self, role: str, addresses: list[tuple[str, int]],
                 timeout: float = CLI_TIMEOUT) -> None:
        self.role = role
        self.addresses = addresses
        self.clients = [CliClient(address, timeout) for address in addresses]
        self.checked = [False] * len(addresses)  # said Hello as a frontend of ``role``
        self.current = 0  # the one in use
        self.on_move: Callable[[str], None] = lambda note: None

    def where(self, index: int) -> str:
        host, port = self.addresses[index]
        return f"{host}:{port}"

    def describe(self, index: int | None = None) -> str:
        """'the buyer frontend at HOST:PORT' (the one in use by default)."""
        return f"the {self.role} frontend at {self.where(self.current if index is None else index)}"

    def unreachable(self) -> str:
        """Which frontends could not be reached, for a person."""
        if len(self.addresses) == 1:
            return f"Cannot reach {self.describe()}; is it running?"
        every = ", ".join(self.where(index) for index in range(len(self.addresses)))
        return f"None of the {len(self.addresses)} {self.role} frontends answers ({every})."

    def send(self, op: str, args: dict, session: str | None, read_only: bool) -> dict:
        """``call``, with every failure as one sentence for a person: ``CliError``
        (``SessionEnded`` when the session is gone, ``WrongServer``).

        A write whose reply is lost is not resent (reads are asked again, of the next
        frontend if there are several).
        """
        try:
            return self.call(op, args, session, read_only)
        except NotSent:
            raise CliError(f"{self.unreachable()} Nothing was sent; try again once it is "
                           "back.") from None
        except NoAnswer:
            if read_only:
                raise CliError(f"No answer from {self.describe()}; try again.") from None
            raise CliError(f"No answer from {self.describe()}, so it is unknown whether {op} "
                           "took effect; check before trying it again.") from None
        except ApiError as error:
            raise explain(error) from None

    def call(self, op: str, args: dict, session: str | None, read_only: bool) -> dict:
        """Send ``op`` to the frontend in use, moving on to the next when it is down.

        Raises ``NotSent`` when none could be reached, ``NoAnswer`` when the request
        left but no reply came (for a read: from none of them), the server's
        ``ApiError``, or ``WrongServer``. Every op a CLI sends goes through here.
        """
        first = self.current
        for attempt in range(len(self.clients)):
            index = self.current
            try:
                self.check(index)
                result = self.clients[index].call(op, args, session, read=read_only)
            except (NotSent, NoAnswer) as failure:
                if isinstance(failure, NoAnswer) and not read_only:
                    raise
                if attempt == len(self.clients) - 1:
                    raise
                self.current = (index + 1) % len(self.clients)
                continue
            if index != first:
                self.on_move(f"{self.where(first)} stopped answering; now using "
                             f"{self.where(index)}.")
            return result
        raise AssertionError("unreachable")

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
        except ApiError:
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
