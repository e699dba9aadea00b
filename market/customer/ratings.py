"""Sellers' ratings as clients see them (``GetSellerRating``): the customer database makes
each from its accounts, votes and purchases (``seller_rating``) and publishes it on its
change feed whenever it moves; a frontend keeps a copy (``market.customer.copy``).
"""
from __future__ import annotations

from market.customer.accounts import Accounts, Role
from market.customer.purchases import Purchases
from market.customer.votes import Votes
from protocol import ApiError


def no_seller(seller_id: int) -> ApiError:
    return ApiError("not_found", f"There is no seller {seller_id}.")


def seller_rating(accounts: Accounts, votes: Votes, purchases: Purchases,
                  seller_id: int) -> dict:
    """The seller's rating, or ``not_found``."""
    seller = accounts.get(Role.SELLER, seller_id)
    if seller is None:
        raise no_seller(seller_id)
    thumbs = votes.thumbs(seller_id)
    return {"seller_id": seller_id, "thumbs_up": thumbs.up, "thumbs_down": thumbs.down,
            "items_sold": purchases.items_sold(seller_id), "name": seller.name}

