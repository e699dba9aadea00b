"""A quota per account on remembered keys (contract §11; issue 28, 5): past it, a write with a
client's key is refused ``resource_exhausted`` and changes nothing; a resend of a key
already remembered is still told its first outcome; Stats counts the refusals; the CLI
says it in one sentence. (The quota is 10,000 keys; these databases take 5.)"""
from __future__ import annotations

import pytest
from helpers.cli import buyer_cli
from helpers.market import listing, start_market

from market.net.client import Client

QUOTA = 5


@pytest.fixture(scope="module")
def small_quota():
    market = start_market(customer_args=("--test-key-quota", str(QUOTA)),
                          product_args=("--test-key-quota", str(QUOTA)))
    yield market
    market.stop()


def test_past_its_quota_an_accounts_keyed_write_is_refused_and_changes_nothing(small_quota,
                                                                             unique):
    market = small_quota
    seller, buyer = market.seller(), market.buyer()
    seller.register(unique("sue"))
    buyer.register(unique("bea"))
    item_id = listing(seller, quantity=100)
    for n in range(QUOTA):
        buyer.keyed("AddItemToCart", f"quota-cart-key-{n:04d}", item_id=item_id, quantity=1)
    error = buyer.failure_of("AddItemToCart", "quota-cart-key-over", item_id=item_id,
                             quantity=1)
    assert error.code == "resource_exhausted" and "slow down" in error.message
    assert buyer("DisplayCart")["cart"]["lines"][0]["quantity"] == QUOTA  # nothing changed
    # A key remembered is still told its first outcome, changing nothing more.
    assert buyer.keyed("AddItemToCart", "quota-cart-key-0000", item_id=item_id, quantity=1)
    assert buyer("DisplayCart")["cart"]["lines"][0]["quantity"] == QUOTA
    # Another account has its own quota; writes without a key are not counted.
    other = market.buyer()
    other.register(unique("bob"))
    other.keyed("AddItemToCart", "quota-other-key-0000", item_id=item_id, quantity=1)
    buyer("AddItemToCart", item_id=item_id, quantity=1)
    # A seller's keys in the product database have their quota too.
    for n in range(QUOTA):
        seller.keyed("ChangeItemPrice", f"quota-price-key-{n:04d}", item_id=item_id,
                     price=2 + n)
    assert seller.failure_of("ChangeItemPrice", "quota-price-key-over", item_id=item_id,
                             price=99).code == "resource_exhausted"
    assert buyer("GetItem", item_id=item_id)["item"]["price"] == 1 + QUOTA
    for database in (market.customer_db, market.product_db):
        client = Client(database.address)
        stats = client.call("Stats")
        client.close()
        assert stats["keys"]["over_quota"] == 1 and stats["keys"]["quota"] == QUOTA


def test_the_buyer_cli_says_so_in_one_sentence(small_quota, unique):
    market = small_quota
    seller = market.seller()
    seller.register(unique("sue"))
    item_id = listing(seller, quantity=100)
    name = unique("cli")
    lines = [f"signup {name} pw"] + [f"add {item_id} 1"] * (QUOTA + 1)
    result = buyer_cli(market, *lines)
    refusals = [line for line in result.stderr.splitlines() if "account" in line]
    assert len(refusals) == 1 and refusals[0].startswith(f"line {QUOTA + 2}: "), result.stderr
    assert "Too many requests from this account" in refusals[0] and "slow down" in refusals[0]
