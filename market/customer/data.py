"""What the customer database keeps, and what each journal record kind does to it.

``CustomerData`` holds the five pieces (``accounts`` and ``sessions``, ``carts``,
``purchases``, ``votes``) and its ``appliers``: the only code that changes them, live and
on replay alike. An applier returns its record's outcome (what a keyed write's resend is
told) and publishes what the frontends' copies follow: a seller's rating whenever it moves,
and the end of a session (``market.replication.feed``).

Not thread-safe: the customer database holds its lock around all of it.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from market.config import SNAPSHOT_PAGE
from market.customer.accounts import Accounts, Role, Sessions
from market.customer.carts import EMPTY, Cart, Carts
from market.customer.purchases import Purchases
from market.customer.ratings import seller_rating
from market.customer.votes import Thumb, Vote, Votes


class CustomerData:
    """The customer database's state and its appliers (``publish``: the change feed's)."""

    def __init__(self, session_timeout: float, publish: Callable[[dict], int]) -> None:
        # Invariants across the pieces: every session names an existing account, and
        # every buyer session has a cart; a cart line is in its session's cart or in
        # one started purchase, never both; a committed purchase's lines have left
        # its buyer's saved cart; a vote is on an item its buyer bought, for the
        # seller it was bought from.
        self.accounts = Accounts()
        self.sessions = Sessions(session_timeout)
        self.carts = Carts()
        self.purchases = Purchases()
        self.votes = Votes()
        self.publish = publish
        self.appliers: dict[str, Callable[[dict], Any]] = {
            "account": self._account_created, "login": self._login, "logout": self._logout,
            "cart": self._cart_changed, "save": self._cart_saved,
            "purchase_started": self._started, "purchase_committed": self._committed,
            "purchases_cancelled": self._cancelled, "vote_recorded": self._vote_recorded,
            "votes_settled": self._votes_settled,
        }

    def seller_rating(self, seller_id: int) -> dict:
        return seller_rating(self.accounts, self.votes, self.purchases, seller_id)

    def followed_page(self, after: int) -> tuple[list[dict], int | None]:
        """A snapshot page of the sellers' ratings (the frontends' copies follow them, and the
        ends of sessions, which need no snapshot)."""
        ids = [i for i in self.accounts.ids(Role.SELLER) if i > after]
        shown = ids[:SNAPSHOT_PAGE]
        more = len(ids) > len(shown)
        return [self.seller_rating(i) for i in shown], shown[-1] if more else None

    def _publish_ratings(self, seller_ids: list[int]) -> None:
        for seller_id in sorted(set(seller_ids)):
            if self.accounts.get(Role.SELLER, seller_id) is not None:
                self.publish(self.seller_rating(seller_id))

    # -- the appliers, one per record kind: each returns its record's outcome ---------------

    def _account_created(self, r: dict) -> dict:
        self.accounts.add(Role(r["role"]), r)
        if r["role"] == Role.SELLER:
            self._publish_ratings([r["user_id"]])
        return {"user_id": r["user_id"]}

    def _cart_changed(self, r: dict) -> dict:
        """A cart change's outcome is empty: a resend is answered with the session's cart as
        it is then (so a key costs no copy of a cart)."""
        self.carts.set(r["token"], Cart(r["cart"]))
        return {}

    def _cart_saved(self, r: dict) -> dict:
        self.carts.save(r["token"])
        return {}

    def _login(self, r: dict) -> None:
        self.sessions.begin(r["token"], Role(r["role"]), r["user_id"], time.monotonic())
        if r["role"] == Role.BUYER:
            self.carts.open(r["token"], r["user_id"])

    def _logout(self, r: dict) -> None:
        """A session ends: every frontend's copy stops answering for it (``ended``)."""
        self.sessions.end(r["token"])
        self.carts.close(r["token"])
        self.publish({"ended": r["token"]})

    def _started(self, r: dict) -> dict:
        self.purchases.start(r["purchase_id"], r["token"], r["buyer_id"], r["lines"],
                             r.get("keyed"))
        self.carts.set(r["token"], EMPTY)
        return {"purchase_id": r["purchase_id"]}

    def _committed(self, r: dict) -> bytes:
        purchase = self.purchases.commit(r["purchase"])
        self.carts.take_bought(purchase.buyer_id, purchase.lines)
        self._publish_ratings([line["seller_id"] for line in r["purchase"]["lines"]])
        return purchase.view

    def _cancelled(self, r: dict) -> None:
        for purchase in self.purchases.cancel(r["purchase_ids"]):
            self.carts.put_back(purchase.token, purchase.lines)

    def _vote_recorded(self, r: dict) -> dict:
        seller_id = self.purchases.bought_from(r["buyer_id"], r["item_id"])
        self.votes.record(Vote(r["buyer_id"], r["item_id"], seller_id, Thumb(r["vote"]),
                               r["key"]))
        return {"vote_key": r["key"], "item_id": r["item_id"]}

    def _votes_settled(self, r: dict) -> None:
        """(The record's fields keep format 3's names: ``counted`` committed, ``refused``
        cancelled.)"""
        sellers = self.votes.sellers_of(r["counted"])
        self.votes.settle(r["counted"], r["refused"])
        self._publish_ratings(sellers)

    # -- snapshots and figures --------------------------------------------------------------

    def parts(self) -> dict:
        """The pieces by their snapshot names, in the order a restore needs (accounts first)."""
        return {"accounts": self.accounts, "sessions": self.sessions, "carts": self.carts,
                "purchases": self.purchases, "votes": self.votes}

    def dump(self) -> dict:
        return {name: part.dump() for name, part in self.parts().items()}

    def restore(self, state: dict) -> None:
        for name, part in self.parts().items():
            part.restore(state[name])

    def stats(self) -> dict:
        return {"accounts": len(self.accounts), "live_sessions": len(self.sessions),
                **self.purchases.counts()}

    def take_over(self, now: float) -> None:
        """Every session counts as used ``now``: the process taken over from renewed them
        without records (each use), so none may expire early here."""
        self.sessions.touch_all(now)
