"""How a CLI reaches its frontends: one or several of one role, checked by ``Hello``.

Frontends are stateless, so a CLI given several (``--server`` repeated) sticks to
one and, when it stops answering, moves to the next with the same session. A
request that never left (``NotSent``) is sent to the next frontend; a read
whose reply was lost is asked again there; a change whose reply was lost is
never resent (``NoAnswer``). Before anything else goes to a frontend, its
``Hello`` must name this CLI's role (``WrongServer`` otherwise).

Exceptions, beyond ``market.client``'s::

    ApiError
      NotSent      no frontend could be reached: the request never left
    WrongServer    a server that is not a frontend of this role (a ``CliError``)
"""
from __future__ import annotations

from market.client import Client, Connection, NoAnswer
from protocol import ApiError

CLI_TIMEOUT = 20.0  # seconds to wait for a frontend: longer than its database timeouts
SERVICE_NAMES = {"seller": "seller server", "buyer": "buyer server",
                 "product_db": "product database", "customer_db": "customer database"}


class CliError(Exception):
    """One sentence to tell the person; the CLI then goes on with the next command."""


class WrongServer(CliError):
    """The server is not a frontend of this CLI's role: the CLI stops (exit status 2)."""


class NotSent(ApiError):
    """The frontend could not be reached, so the request never left this process."""


class CliClient(Client):
    """A ``Client`` that tells 'never sent' (``NotSent``) apart from 'sent, no answer',
    and reads amounts exactly (``Decimal``), so any total shows to the cent."""

    exact = True

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

    def describe(self, index: int | None = None) -> str:
        host, port = self.addresses[self.current if index is None else index]
        return f"the {self.role} server at {host}:{port}"

    def call(self, op: str, args: dict, session: str | None, read_only: bool) -> dict:
        """Send ``op`` to the frontend in use, moving on to the next when it is down.

        Raises ``NotSent`` when none could be reached, ``NoAnswer`` when the request
        left but no reply came (for a read: from none of them), the server's
        ``ApiError``, or ``WrongServer``.
        """
        for attempt in range(len(self.clients)):
            index = self.current
            try:
                self._check(index)
                return self.clients[index].call(op, args, session, read=read_only)
            except (NotSent, NoAnswer) as failure:
                if isinstance(failure, NoAnswer) and not read_only:
                    raise
                if attempt == len(self.clients) - 1:
                    raise
                self.current = (index + 1) % len(self.clients)
        raise AssertionError("unreachable")

    def _check(self, index: int) -> None:
        """Make sure frontend ``index`` is one of ``role`` before sending it anything else."""
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
            host, port = self.addresses[index]
            what = f"the {SERVICE_NAMES[kind]}" if kind in SERVICE_NAMES else \
                "not a marketplace frontend"
            raise WrongServer(f"{host}:{port} is {what}, not the {self.role} server; "
                              "nothing was sent.")
        self.checked[index] = True

    def close(self) -> None:
        for client in self.clients:
            client.close()
