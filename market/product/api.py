"""The product database's internal ops, each declared once (see ``market.net.internal``).

Money: every price in this API is integer cents (``price`` in ``RegisterItem``,
``ChangePrice`` and ``ReserveUnits``' lines, ``price_cents`` in ``GetItems``),
with one exception: the ``item``/``items`` of ``GetItem``, ``Search``,
``SellerItems``, ``ChangePrice`` and ``RemoveUnits`` are the contract's public
form (price in dollars), encoded once per change by the database so that the
frontends pass them on to clients unparsed. A frontend never computes with those
prices; what it computes with (a cart's lines, ``GetItems``) comes in cents.

A seller's writes are declared ``keyed``: they take ``key`` and ``fingerprint``
(``KEYED_ARGS``), and the database applies each key once per seller and answers
a resend with the first outcome.

Replies:
  RegisterItem        {"item_id"}
  ChangePrice, RemoveUnits, GetItem   {"item": public item}
  Search              {"items": [public item, ...]}
  SellerItems         {"items": [public item, ...], "next": cursor or null}
  GetItems            {"items": [{"item_id", "name", "price_cents", "quantity"}, ...]}
  ReserveUnits        {"lines": [{"item_id", "name", "quantity", "price", "seller_id"}, ...]}
  HeldReservations    {"purchase_ids": [...]}
  SettleReservations  {}
  CountVote           {"committed": true, or false (the key was cancelled)}
  ResolveVotes        {"committed": [key, ...], "cancelled": [key, ...]}
"""
from __future__ import annotations

from market.config import CART_MAX
from market.fields import (
                           CATEGORY,
                           CONDITION,
                           ITEM_ID,
                           ITEM_NAME,
                           KEYWORDS,
                           PRICE_CENTS,
                           PURCHASE_ID,
                           QUANTITY,
                           SEARCH_LIMIT,
                           SELLER_ID,
                           VOTE,
                           VOTE_KEY,
)
from market.keys import KEYED_ARGS
from market.net.internal import InternalOp
from market.paging import CURSOR, PAGE_LIMIT
from protocol import Int, ListOf, Record

RESERVE_LINE = {"item_id": ITEM_ID, "quantity": QUANTITY}
VOTE_ARGS = {"item_id": ITEM_ID, "vote": VOTE, "key": VOTE_KEY}

# -- a seller's items ---------------------------------------------------------------

REGISTER_ITEM = InternalOp("RegisterItem", {
    "seller_id": SELLER_ID, "name": ITEM_NAME, "category": CATEGORY, "keywords": KEYWORDS,
    "condition": CONDITION, "price": PRICE_CENTS, "quantity": QUANTITY, **KEYED_ARGS},
    needs_session=False, keyed=True)
CHANGE_PRICE = InternalOp("ChangePrice", {
    "seller_id": SELLER_ID, "item_id": ITEM_ID, "price": PRICE_CENTS, **KEYED_ARGS},
    needs_session=False, keyed=True)
# The public UpdateUnitsForSale: takes units off sale.
REMOVE_UNITS = InternalOp("RemoveUnits", {
    "seller_id": SELLER_ID, "item_id": ITEM_ID, "quantity": QUANTITY, **KEYED_ARGS},
    needs_session=False, keyed=True)
SELLER_ITEMS = InternalOp("SellerItems", {
    "seller_id": SELLER_ID, "limit": PAGE_LIMIT, "after": CURSOR},
    needs_session=False, read=True)

# -- reading items ------------------------------------------------------------------

SEARCH = InternalOp("Search", {"category": CATEGORY, "keywords": KEYWORDS,
                               "limit": SEARCH_LIMIT.inner}, needs_session=False, read=True)
GET_ITEM = InternalOp("GetItem", {"item_id": ITEM_ID}, needs_session=False, read=True)
GET_ITEMS = InternalOp("GetItems", {"item_ids": ListOf(ITEM_ID, 2 * CART_MAX)},
                       needs_session=False, read=True)

# -- reservations (the units of a purchase): held, then committed or cancelled -------------

# Keyed by the purchase id: a resend gets the lines first reserved.
RESERVE_UNITS = InternalOp("ReserveUnits", {
    "purchase_id": PURCHASE_ID, "lines": ListOf(Record(RESERVE_LINE))}, needs_session=False,
    keyed=True)
HELD_RESERVATIONS = InternalOp("HeldReservations", {
    "older_than": Int(0, 86_400), "limit": Int(1, 10_000)}, needs_session=False, read=True)
# Settling: applies the customer database's verdicts.
SETTLE_RESERVATIONS = InternalOp("SettleReservations", {
    "committed": ListOf(PURCHASE_ID), "cancelled": ListOf(PURCHASE_ID)}, needs_session=False,
    keyed=True)

# -- votes on items: each vote key counted once (committed), or cancelled --------------------

# Counts the vote of ``key`` on the item unless the key has a verdict.
COUNT_VOTE = InternalOp("CountVote", VOTE_ARGS, needs_session=False, keyed=True)
# The verdict on each key, cancelling those not counted.
RESOLVE_VOTES = InternalOp("ResolveVotes", {"keys": ListOf(VOTE_KEY)},
                           needs_session=False, keyed=True)
