"""The writes that span both databases, as a buyer frontend makes them: a purchase and a vote.

Each goes step by step through both databases, every step keyed, and when a step fails
it answers by the deciding database's verdict (``market.frontend.settling``): a client is
told the true outcome, or ``deadline_exceeded`` when it cannot be learned now, never
``unavailable`` for what took effect. Nothing is kept here between requests: what a dead
frontend leaves unfinished, the databases and every buyer frontend's settler finish.
"""
from __future__ import annotations

import datetime
import time
from typing import Callable

from market.customer import api as customer_api
from market.customer.purchases import PurchaseState
from market.customer.votes import VoteState
from market.errors import FINAL_ERRORS, NoAnswer
from market.fields import card_problem
from market.frontend.settling import Settler
from market.net.client import Client
from market.net.service import Request
from market.product import api as product_api
from protocol import ApiError, RawResult

Keyed = Callable[[Request, dict], dict]


class Checkout:
    """Purchases and votes through a frontend's two database clients; ``keyed`` makes the
    key and fingerprint of a database write (``Frontend.keyed``), ``card_print`` the keyed
    hash a card number is fingerprinted by."""

    def __init__(self, customer: Client, product: Client, settler: Settler, keyed: Keyed,
                 card_print: Callable[[str], str]) -> None:
        self.customer = customer
        self.product = product
        self.settler = settler
        self.keyed = keyed
        self.card_print = card_print
        self.commit_delay = 0.0  # for tests: a pause between taking units and the commit

    def buy(self, request: Request, card_name: str, card_number: str,
            expiry: str) -> RawResult:
        """Buy the whole session cart across both databases, all or nothing, once per key.

        1. customer db ``StartPurchase``: check the session, then move the cart's
           lines into a purchase started under an id derived from the buyer's key.
           A resend finds that purchase: committed (its record is the answer),
           started (go on: the steps below are keyed by the id) or cancelled (its
           final error again, else ``conflict``).
        2. product db ``ReserveUnits``: take every line's units under one lock, as
           a reservation held under that id.
        3. customer db ``CommitPurchase``: record exactly those lines. The customer
           database decides: an id is committed once, or cancelled (its lines back
           in the cart) and then never committed.
        4. product db ``SettleReservations``: the reservation is committed (units kept).
        When step 2 or 3 fails, ``failed`` answers by the verdict. What a
        dead frontend leaves behind, the customer database's sweeper cancels and
        every buyer frontend's settling thread settles (``market.frontend.settling``).
        """
        # The fingerprint sees the whole card, the number only through a keyed hash: the
        # number itself, or a plain hash of it, journaled, could be searched offline.
        card = {"card_name": card_name, "card_number": self.card_print(card_number),
                "expiry": expiry}
        problem = card_problem(card_name, card_number, expiry, datetime.date.today())
        started = self.customer.call(customer_api.START_PURCHASE, {
            **self.keyed(request, card), "card_problem": problem}, request.session)
        purchase_id = started["purchase_id"]
        if started["state"] == PurchaseState.COMMITTED:
            return self.customer.call_raw(customer_api.GET_PURCHASE,
                                          {"purchase_id": purchase_id}, request.session)
        lines = [{"item_id": item_id, "quantity": units} for item_id, units in started["cart"]]
        try:
            sold = self.product.call(product_api.RESERVE_UNITS, {"purchase_id": purchase_id,
                                                                 "lines": lines})["lines"]
            if self.commit_delay:
                time.sleep(self.commit_delay)
            purchase = self.customer.call_raw(customer_api.COMMIT_PURCHASE, {
                "purchase_id": purchase_id, "lines": sold, "card_last4": card_number[-4:]})
        except ApiError as error:
            return self.failed(request, purchase_id, error)
        self.settler.settle_units({"committed": [purchase_id], "cancelled": []})
        return purchase

    def failed(self, request: Request, purchase_id: str, error: ApiError) -> RawResult:
        """Answer by the purchase's verdict (asked for, cancelling it unless committed):
        a committed purchase's record (never ``unavailable``: it was made); for one
        cancelled, ``error`` if it was a final refusal, else ``unavailable`` (nothing
        was bought). If the verdict cannot be learned now: ``deadline_exceeded`` when
        the failed step may have been applied (``NoAnswer``), else ``error`` (that step
        was refused or never sent, so this request bought nothing; what it started is
        undone by the sweeper and the settlers)."""
        final = error.code in FINAL_ERRORS
        try:
            verdict = self.settler.purchases([purchase_id], {
                "code": error.code, "message": error.message} if final else None)
        except ApiError:
            if not isinstance(error, NoAnswer):
                raise error from None
            raise ApiError("deadline_exceeded", "The purchase may or may not have been made; "
                                                f"{ask_again(request)}.") from None
        if purchase_id in verdict["committed"]:
            try:
                return self.customer.call_raw(customer_api.GET_PURCHASE,
                                              {"purchase_id": purchase_id}, request.session)
            except ApiError:
                raise ApiError("deadline_exceeded", "The purchase was made, but it cannot be "
                                                    f"shown now; {ask_again(request)}.") \
                    from None
        if final:
            raise error
        raise ApiError("unavailable", "The purchase was not made and nothing was charged (a "
                                      "database did not answer in time); the cart is as it "
                                      "was; try again.")


    def vote(self, request: Request, item_id: int, vote: str) -> dict:
        """Count the buyer's vote on the item and for its seller: on both, or on neither.

        1. customer db ``RecordVote``: the buyer bought the item and has no vote on
           it; the vote is recorded (not yet counted) under a vote key derived
           from the buyer's key. A resend finds that vote, in whatever state.
        2. product db ``CountVote``: counted on the item, once per vote key, unless the
           key was cancelled (its verdict: committed).
        3. customer db ``SettleVotes``: counted for the seller too, or dropped.
        When step 2 fails, the product database's verdict on the key is asked for
        (``ResolveVotes``: cancelling it unless it was counted). A vote left recorded
        is settled by every buyer frontend's settling thread (``market.frontend.settling``).
        """
        args = {"item_id": item_id, "vote": vote}
        try:
            recorded = self.customer.call(customer_api.RECORD_VOTE, {
                **args, **self.keyed(request, args)}, request.session)
        except ApiError as error:
            if error.code == "conflict":  # not bought; not_found if there is no such item
                self.product.call(product_api.GET_ITEM, {"item_id": item_id})
            raise
        key = recorded["vote_key"]
        if recorded["state"] is None:
            raise ApiError("conflict", "This vote was not counted, and nothing changed; vote "
                                       "again with a new idempotency_key.")
        if recorded["state"] == VoteState.COMMITTED:
            return {}
        try:
            counted = self.product.call(product_api.COUNT_VOTE,
                                        {**args, "key": key})["committed"]
            verdict = {"committed": [key] if counted else [],
                       "cancelled": [] if counted else [key]}
        except ApiError:
            verdict = None  # the outcome is unknown: ask for the verdict
        try:
            verdict = self.settler.votes([key], verdict)
        except ApiError:
            if verdict and verdict["committed"]:  # counted on the item: the seller's follows
                return {}
            raise ApiError("deadline_exceeded", "The vote was recorded but not yet counted: "
                                                "within a minute of the databases answering "
                                                "it counts on both the item and its seller, or "
                                                f"on neither; {ask_again(request)}.") from None
        if verdict["committed"]:
            return {}
        raise ApiError("unavailable", "The vote was not counted (the item's database did not "
                                      "take it in time); nothing changed; vote again.")


def ask_again(request: Request) -> str:
    """How the client of a write whose outcome is unknown learns it."""
    if request.idempotency_key:
        return "resend it with the same idempotency_key to learn the outcome"
    return "send writes with an idempotency_key, so that a resend can learn their outcome"
