"""Whether a frontend's two databases belong to one market, and how far their clocks are off.

Each database keeps a market identity (``Database.market``, None until claimed) and
says in ``Hello`` whether it holds any data (``empty``). A frontend learns both
databases' from the ``Hello`` on each new connection (``MarketCheck.saw``, each
``Client``'s ``on_hello``) and checks the pair before each request
(``MarketCheck.require``), by ``decide``:

- the same identity on both: serve;
- none on either, and both empty (a new market) or both holding data (a market
  from before identities, upgraded): make one and claim it on both (customer
  database first, then the identity it holds on the product database);
- one identity and one database without, both still empty: claim it on the other
  (a claim half done by another frontend; nothing yet refers to anything);
- anything else: the databases hold data of different markets (a lost or replaced
  data directory, or a memory-only database restarted beside its partner):
  refuse every request needing them, ``unavailable``, and log a WARNING saying what
  to do, once per change of state.

A database whose clock is more than ``CLOCK_SKEW_WARNING`` seconds off this host's
is logged as a WARNING too; requests still work (``Client`` stamps deadlines in the
database's clock).
"""
from __future__ import annotations

import enum
import functools
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Callable

from market.config import CLOCK_SKEW_WARNING
from market.database.api import CLAIM_MARKET, HELLO
from market.errors import NotOneMarket
from market.net.client import Client
from protocol import ApiError

DATABASES = ("customer", "product")  # the order of claims

log = logging.getLogger("market.frontend.identity")


@dataclass(frozen=True)
class Seen:
    """What one database's ``Hello`` said about its market."""

    market: str | None
    empty: bool

    @classmethod
    def from_hello(cls, hello: dict) -> "Seen":
        market = hello.get("market")
        return cls(market if isinstance(market, str) else None, hello.get("empty") is True)

    def describe(self) -> str:
        if self.market is not None:
            return f"market {self.market}"
        if self.empty:
            return "no market yet (a new, empty database)"
        return "no market identity (data from an older version)"


class Action(enum.Enum):
    SERVE = "serve"
    CLAIM = "claim"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    action: Action
    market: str | None = None  # SERVE: the shared one; CLAIM: the one to claim (None: a new one)


def decide(customer: Seen, product: Seen) -> Decision:
    """What a frontend does with this pair of databases (see the module doc)."""
    if customer.market is not None and product.market is not None:
        if customer.market == product.market:
            return Decision(Action.SERVE, customer.market)
        return Decision(Action.REFUSE)
    if customer.market is None and product.market is None:
        if customer.empty == product.empty:
            return Decision(Action.CLAIM)
        return Decision(Action.REFUSE)
    if customer.empty and product.empty:
        return Decision(Action.CLAIM, customer.market or product.market)
    return Decision(Action.REFUSE)


MISMATCH = ("this frontend refuses every request: its databases do not belong together "
            "(customer database: {customer}; product database: {product}). If one of them "
            "lost its data directory, stop it and restore the directory from a backup; to "
            "start a new, empty market instead, start both databases on fresh data "
            "directories (docs/operations.md: 'One market, one identity')")



def refusal() -> NotOneMarket:
    return NotOneMarket("unavailable", "This market's databases do not belong together; "
                                       "nothing was changed. The operator has been told.")


class MarketCheck:
    """Whether this frontend may use its two databases: one market, checked on every new
    connection and, until both agree, before every request."""

    def __init__(self, customer: Client, product: Client) -> None:
        for name, client in (("customer", customer), ("product", product)):
            client.on_hello = functools.partial(self.saw, name)
        # The pair is checked, and a market claimed, through clients of their own, which no
        # ``saw`` refuses (the frontend's clients, and their dedicated ones, are checked).
        self._checkers = {name: client.sibling(health=client.health)
                          for name, client in (("customer", customer), ("product", product))}
        # Guards the fields below. ``_serving`` is the identity both databases were last
        # seen to share (None: check before the next request); ``_served`` the one served
        # last (None: none yet), which every new connection must show; ``_reported`` the
        # state last logged; ``_skew`` each database's clock offset last warned about.
        self._lock = threading.Lock()
        self._serving: str | None = None
        self._served: str | None = None
        self._reported: tuple | None = None
        self._skew: dict[str, float] = {}

    def saw(self, database: str, hello: dict, clock_offset: float,
            hello_again: Callable[[], dict]) -> None:
        """A new connection's ``Hello``: if that database no longer holds the market served
        last, refuse the request about to use the connection (it may have passed
        ``require`` before the change was seen), and check the pair again before the next
        request.

        A ``Hello`` answered while another thread was claiming the market may show none
        yet; so a mismatch is asked once more on the same connection, after this thread
        saw the claim finished, before it counts.
        """
        self._check_clock(database, clock_offset)
        for ask in (lambda: hello, hello_again):
            market = Seen.from_hello(ask()).market
            with self._lock:
                if self._served is None or market == self._served:
                    return
        with self._lock:
            self._serving = None
        raise ApiError("unavailable", "The marketplace's storage restarted; nothing was "
                                      "changed; try again.")

    def one_market(self) -> bool | None:
        """For ``Stats``: True while both databases are seen to share one market, False while
        requests are refused for it, None before the pair was checked."""
        with self._lock:
            if self._serving is not None:
                return True
            return None if self._reported is None else self._reported[0] is Action.SERVE

    def require(self) -> None:
        """Return if both databases belong to one market (claiming one for a new market);
        else raise ``unavailable``."""
        if self._serving is not None:  # read without the lock: one attribute, the fast path
            return
        for _ in range(2):  # a claim, then a look at what the databases now hold
            seen = {name: Seen.from_hello(client.call(HELLO))
                    for name, client in self._checkers.items()}
            decision = decide(seen["customer"], seen["product"])
            if decision.action is Action.SERVE:
                with self._lock:
                    self._serving = self._served = decision.market
                self._report(Action.SERVE, seen)
                return
            if decision.action is Action.REFUSE:
                self._report(Action.REFUSE, seen)
                raise refusal()
            self._claim(decision.market or secrets.token_hex(8), seen)
        raise ApiError("unavailable", "The marketplace's storage is starting; nothing was "
                                      "changed; try again.")

    def _claim(self, market: str, seen: dict[str, Seen]) -> None:
        """Claim ``market`` on each database that has none, customer database first; the
        product database is claimed whatever the customer database then holds, so that
        frontends claiming at once agree."""
        for name in DATABASES:
            if seen[name].market is None:
                market = self._checkers[name].call(CLAIM_MARKET, {"market": market})["market"]
                log.info("the %s database now belongs to market %s", name, market)
            else:
                market = seen[name].market

    def _report(self, action: Action, seen: dict[str, Seen]) -> None:
        """Log the state once each time it changes."""
        state = (action, seen["customer"], seen["product"])
        with self._lock:
            if state == self._reported:
                return
            self._reported = state
        if action is Action.REFUSE:
            log.warning(MISMATCH.format(customer=seen["customer"].describe(),
                                        product=seen["product"].describe()))
        else:
            log.info("both databases belong to market %s", seen["customer"].market)

    def _check_clock(self, database: str, offset: float) -> None:
        """Warn once when a database's clock is off by more than ``CLOCK_SKEW_WARNING``
        (and again when the offset moves by more than that)."""
        with self._lock:
            warned = self._skew.get(database)
            if abs(offset) <= CLOCK_SKEW_WARNING:
                self._skew.pop(database, None)
                news = warned is not None
            else:
                news = warned is None or abs(offset - warned) > CLOCK_SKEW_WARNING
                if news:
                    self._skew[database] = offset
        if not news:
            return
        if abs(offset) <= CLOCK_SKEW_WARNING:
            log.info("the %s database's clock agrees with this host's again", database)
        else:
            log.warning("the %s database's clock is %.1f s %s this host's: deadlines are "
                        "stamped in the database's clock, so requests still work, but set "
                        "the clocks right (NTP)", database, abs(offset),
                        "ahead of" if offset > 0 else "behind")
