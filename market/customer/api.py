"""The customer database's internal ops, each declared once (see ``market.net.internal``).

Money is integer cents (``price`` of a ``CommitPurchase`` line; the ``purchase``
replies of ``CommitPurchase`` and ``GetPurchases`` are the contract's public
form, in dollars, encoded once by the database so the frontends pass them on
unparsed). A cart travels as ``[[item_id, units], ...]``; the frontend adds
item details.

Writes declared ``keyed`` take ``key`` and ``fingerprint`` (``KEYED_ARGS``): the
database applies each key once per account (per role and name for
``CreateAccount``) and answers a resend with the first outcome (a cart change's
reply is the session's cart as it is then).

Replies:
  CreateAccount          {"user_id"}
  GetSalt                {"salt", "cost"} (cost null for an unknown name)
  Login                  {"session", "user_id"}
  Logout                 {}
  CheckSession           {"user_id"}, and "cache_s": how long the follower may answer
                         the session's checks itself
  GetSellerRating        {"seller_id", "name", "thumbs_up", "thumbs_down", "items_sold"}
  GetCart, AddToCart, RemoveFromCart, SaveCart, ClearCart   {"cart": lines}
  StartPurchase          {"purchase_id", "state", "cart": lines (while started)}
  CommitPurchase, GetPurchase   {"purchase": public purchase}
  ResolvePurchases       {"committed": [...], "cancelled": [...]}
  GetPurchases           {"purchases": [public purchase, ...], "next", "items_purchased"}
  RecordVote             {"vote_key", "item_id", "state": "recorded", "counted" or null
                          (refused)}
  RecordedVotes          {"keys": [...]}
  SettleVotes            {}
"""
from __future__ import annotations

from market.fields import (
                           HASH_COST,
                           ITEM_ID,
                           LOGIN_USERNAME,
                           PASSWORD_HASH,
                           PRICE_CENTS,
                           PURCHASE_ID,
                           QUANTITY,
                           ROLE,
                           SALT,
                           SELLER_ID,
                           STORED_ITEM_NAME,
                           USERNAME,
                           VOTE,
                           VOTE_KEY,
)
from market.keys import KEYED_ARGS
from market.net.internal import InternalOp
from market.paging import CURSOR, PAGE_LIMIT
from protocol import Int, ListOf, Omittable, Record, Str

# A new account's name is checked (section 15); a login's is any name that may be stored.
NEW_ACCOUNT = {"role": ROLE, "username": USERNAME}
ACCOUNT = {"role": ROLE, "username": LOGIN_USERNAME}
# One line of a committed purchase, as the product database reserved it (an item's name may
# be older than section 15).
PURCHASE_LINE = {"item_id": ITEM_ID, "name": STORED_ITEM_NAME, "quantity": QUANTITY,
                 "price": PRICE_CENTS, "seller_id": SELLER_ID}
CART_LINE = {"item_id": ITEM_ID, "quantity": QUANTITY}
FOLLOWER = Str(16, 16)  # a frontend's name on the change feed (``market.replication.feed``)
# A final error: what a purchase's resend is told again.
REASON = {"code": Str(1, 32), "message": Str(0, 500)}

# -- accounts and sessions ----------------------------------------------------------

CREATE_ACCOUNT = InternalOp("CreateAccount", {**NEW_ACCOUNT, "salt": SALT,
                                              "hash": PASSWORD_HASH, "cost": HASH_COST,
                                              **KEYED_ARGS},
                            needs_session=False, keyed=True)
GET_SALT = InternalOp("GetSalt", ACCOUNT, needs_session=False, read=True)
LOGIN = InternalOp("Login", {**ACCOUNT, "hash": PASSWORD_HASH}, needs_session=False)
LOGOUT = InternalOp("Logout", {"role": ROLE})
# Checks the session and marks it used (a read as far as resending goes); a ``follower``
# holding a lease on this database's feed may then answer its checks itself for a while.
CHECK_SESSION = InternalOp("CheckSession", {"role": ROLE, "follower": Omittable(FOLLOWER)},
                           read=True)
GET_SELLER_RATING = InternalOp("GetSellerRating", {"role": ROLE,
                                                   "seller_id": Omittable(SELLER_ID)}, read=True)

# -- the session's cart ---------------------------------------------------------------

GET_CART = InternalOp("GetCart", read=True)
# ``available``: the item's units for sale now, as the frontend just read them.
ADD_TO_CART = InternalOp("AddToCart", {**CART_LINE, "available": Int(0), **KEYED_ARGS},
                         keyed=True)
REMOVE_FROM_CART = InternalOp("RemoveFromCart", {**CART_LINE, **KEYED_ARGS}, keyed=True)
SAVE_CART = InternalOp("SaveCart", KEYED_ARGS, keyed=True)
CLEAR_CART = InternalOp("ClearCart", KEYED_ARGS, keyed=True)

# -- purchases: started, then committed or cancelled ------------------------------------

# Keyed by the buyer's key: the purchase id is derived from it (a resend finds its
# purchase, whatever state it is in). ``card_problem``: the frontend's verdict on the
# card ('' when fine).
START_PURCHASE = InternalOp("StartPurchase", {**KEYED_ARGS, "card_problem": Str(0, 200)},
                            keyed=True)
# Keyed by the purchase id: a resend gets the first record.
COMMIT_PURCHASE = InternalOp("CommitPurchase", {
    "purchase_id": PURCHASE_ID, "lines": ListOf(Record(PURCHASE_LINE)),
    "card_last4": Str(4, 4)}, needs_session=False, keyed=True)
# The verdict on each id, cancelling those not committed (with ``reason``, the final
# error a resend of the purchase gets again).
RESOLVE_PURCHASES = InternalOp("ResolvePurchases", {
    "purchase_ids": ListOf(PURCHASE_ID), "reason": Omittable(Record(REASON))},
    needs_session=False, keyed=True)
GET_PURCHASE = InternalOp("GetPurchase", {"purchase_id": PURCHASE_ID}, read=True)
GET_PURCHASES = InternalOp("GetPurchases", {"limit": PAGE_LIMIT, "after": CURSOR}, read=True)

# -- votes: recorded, then counted or refused by the product database's verdict -------------

# Keyed by the buyer's key: the vote key is derived from it.
RECORD_VOTE = InternalOp("RecordVote", {"item_id": ITEM_ID, "vote": VOTE, **KEYED_ARGS},
                         keyed=True)
RECORDED_VOTES = InternalOp("RecordedVotes", {
    "older_than": Int(0, 86_400), "limit": Int(1, 10_000)}, needs_session=False, read=True)
# Applies the product database's verdicts.
SETTLE_VOTES = InternalOp("SettleVotes", {"committed": ListOf(VOTE_KEY),
                                          "cancelled": ListOf(VOTE_KEY)},
                          needs_session=False, keyed=True)
