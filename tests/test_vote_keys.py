"""A vote's key is per buyer and item on both databases, and its verdict lasts as long as the
vote (contract §11): a client's key reused after its time (``--key-ttl``) is a new request
that counts on both the item and its seller, or on neither."""
from __future__ import annotations

from helpers.market import CARD, listing, start_market, wait_until

from market.net.client import Client


def clients_keys(database) -> int:
    client = Client(database.address)
    try:
        return client.call("Stats")["keys"]["clients"]
    finally:
        client.close()


def test_a_vote_key_reused_after_its_time_counts_on_the_item_and_its_seller(unique):
    market = start_market(customer_args=("--key-ttl", "1"), product_args=("--key-ttl", "1"))
    try:
        seller, buyer = market.seller(), market.buyer()
        seller_id = seller.register(unique("sue"))
        buyer.register(unique("bea"))
        first, second = listing(seller), listing(seller)
        for number, item_id in enumerate((first, second)):
            buyer.keyed("AddItemToCart", f"vote-keys-cart-{number:08d}", item_id=item_id,
                        quantity=1)
        buyer.keyed("MakePurchase", "vote-keys-purchase-0000", **CARD)
        assert buyer.keyed("ProvideFeedback", "vote-keys-reused-0000", item_id=first,
                           vote="up") == {}
        # Every client key's outcome forgotten: the reused key names a new request.
        assert wait_until(lambda: clients_keys(market.customer_db) == 0, timeout=10)
        assert buyer.keyed("ProvideFeedback", "vote-keys-reused-0000", item_id=second,
                           vote="up") == {}
        thumbs = {item_id: buyer("GetItem", item_id=item_id)["item"]["thumbs_up"]
                  for item_id in (first, second)}
        assert thumbs == {first: 1, second: 1}
        assert buyer("GetSellerRating", seller_id=seller_id)["thumbs_up"] == 2
        # One vote per buyer and item, on both sides alike.
        assert buyer.error("ProvideFeedback", item_id=second, vote="down") == "conflict"
        assert buyer("GetItem", item_id=second)["item"]["thumbs_down"] == 0
    finally:
        market.stop()
