"""Settling: finishing the writes that span both databases, by one database's verdict.

A verdict is *committed* or *cancelled*. A purchase is decided by the customer
database: ``ResolvePurchases`` answers each id's verdict (a committed id stays
committed; every other is cancelled from then on) and the units follow in the product
database (``SettleReservations``: kept, or given back). A vote is decided by the product
database: ``ResolveVotes`` answers each vote key's verdict (a key counted on the item is
committed; every other is cancelled from then on, so a late ``CountVote`` counts
nothing) and the seller's thumbs follow in the customer database (``SettleVotes``).

Asking for a verdict decides it, once, so whoever asks settles a write the same
way: the frontend whose step failed, or any buyer frontend's settling thread,
which finds what was left unfinished longer than ``settle_after`` (a frontend
died, a database stalled). Every settling op is keyed by the ids it names (a lost
reply is asked again) and, like every request, refused once its deadline has
passed, changing nothing: the next round sends it again. Nothing is queued in a
frontend's memory: the state lives in the databases (on disk with ``--data-dir``).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from market.config import SETTLE_BATCH
from market.customer import api as customer_api
from market.errors import TRANSIENT_ERRORS
from market.net.client import Client
from market.net.internal import InternalOp
from market.product import api as product_api
from protocol import ApiError

log = logging.getLogger("market.frontend.settling")



class Settler:
    """Settles purchases and votes through a frontend's two database clients."""

    def __init__(self, customer: Client, product: Client, settle_after: float) -> None:
        self.customer = customer
        self.product = product
        self.settle_after = settle_after

    def purchases(self, purchase_ids: list[str], reason: dict | None = None) -> dict:
        """The customer database's verdict on these purchases, cancelling those not
        committed (``reason``: the final error a resend of one is told again), then
        applied to their units; if the product database does not take it now, the
        settling thread will (the reservations stay held)."""
        args = {"purchase_ids": purchase_ids, **({"reason": reason} if reason else {})}
        verdict = self.customer.call(customer_api.RESOLVE_PURCHASES, args)
        self.settle_units(verdict)
        return verdict

    def settle_units(self, verdict: dict) -> None:
        """Apply a verdict ``{"committed", "cancelled"}`` to the units, leaving a failure to
        the settling thread."""
        try:
            self.product.call(product_api.SETTLE_RESERVATIONS, verdict)
        except ApiError as error:
            log.log(logging.INFO if error.code in TRANSIENT_ERRORS else logging.WARNING,
                    "settling %d reservations failed (%s); the settling thread will "
                    "retry", len(verdict["committed"]) + len(verdict["cancelled"]), error.code)

    def votes(self, keys: list[str], verdict: dict | None = None) -> dict:
        """The product database's verdict on these vote keys (asked for, cancelling those not
        counted, unless given), then applied to the sellers' thumbs."""
        if verdict is None:
            verdict = self.product.call(product_api.RESOLVE_VOTES, {"keys": keys})
        self.customer.call(customer_api.SETTLE_VOTES, verdict)
        return verdict

    def run_forever(self, require_one_market: Callable[[], None]) -> None:
        """Forever: settle the purchases and votes left unfinished longer than
        ``settle_after``, while both databases belong to one market."""
        while True:
            time.sleep(self.settle_after / 2)
            try:
                require_one_market()
            except ApiError:  # NotOneMarket (logged once), or a database is away: next round
                continue
            self._settle_stale(self.product, product_api.HELD_RESERVATIONS, "purchase_ids",
                               self.purchases)
            self._settle_stale(self.customer, customer_api.RECORDED_VOTES, "keys", self.votes)

    def _settle_stale(self, database: Client, listing: InternalOp, field: str,
                      settle: Callable[[list[str]], dict]) -> None:
        """Settle, a batch at a time, what ``listing`` says was left unfinished."""
        try:
            while True:
                stale = database.call(listing, {"older_than": self.settle_after,
                                                "limit": SETTLE_BATCH})[field]
                if stale:
                    settle(stale)
                if len(stale) < SETTLE_BATCH:
                    return
        except ApiError as error:
            log.log(logging.INFO if error.code in TRANSIENT_ERRORS else logging.WARNING,
                    "settling unfinished %s failed: %s", listing.name, error.code)
