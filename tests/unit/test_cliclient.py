"""market/cliclient.py, the parts without a connection: which ops are writes and get a key,
the key's shape, the order frontends are tried in, and the words for a person."""
from __future__ import annotations

import pytest

from market.cli.frontends import WRITES, Frontends, look, new_key
from market.keys import IDEMPOTENCY_KEY

# Contract §11: every write of both frontends takes a key; these take none.
UNKEYED = ["Hello", "Login", "Logout", "GetItem", "SearchItemsForSale", "DisplayCart",
           "DisplayItemsForSale", "GetSellerRating", "GetBuyerPurchases"]
KEYED = ["CreateAccount", "RegisterItemForSale", "ChangeItemPrice", "UpdateUnitsForSale",
         "AddItemToCart", "RemoveItemFromCart", "SaveCart", "ClearCart", "MakePurchase",
         "ProvideFeedback"]


def test_the_writes_are_the_contracts():
    assert WRITES == set(KEYED)


@pytest.mark.parametrize("op", KEYED)
def test_a_write_gets_a_fresh_key_the_frontends_accept(op):
    keys = {new_key(op) for _ in range(100)}
    assert len(keys) == 100  # one per command
    for key in keys:
        assert IDEMPOTENCY_KEY("idempotency_key", key) == key


@pytest.mark.parametrize("op", UNKEYED)
def test_reads_login_and_logout_get_no_key(op):
    assert new_key(op) is None


def test_frontends_are_tried_from_the_one_in_use_round():
    frontends = Frontends("buyer", [("127.0.0.1", 1), ("127.0.0.1", 2), ("127.0.0.1", 3)])
    assert frontends.order() == [0, 1, 2]
    frontends.current = 2
    assert frontends.order() == [2, 0, 1]
    assert Frontends("buyer", [("127.0.0.1", 1)]).order() == [0]


def test_who_did_not_answer_is_named():
    one = Frontends("seller", [("127.0.0.1", 8001)])
    assert one.silent() == "No answer from the seller frontend at 127.0.0.1:8001"
    two = Frontends("buyer", [("127.0.0.1", 8002), ("10.0.0.2", 8004)])
    assert two.silent() == ("No answer from any of the 2 buyer frontends "
                            "(127.0.0.1:8002, 10.0.0.2:8004)")
    assert two.unreachable() == ("None of the 2 buyer frontends answers "
                                 "(127.0.0.1:8002, 10.0.0.2:8004).")


def test_what_to_check_is_said():
    assert look("cart") == "check with 'cart' before trying it again."
    assert look("") == "check before trying it again."
