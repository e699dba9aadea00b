"""A purchase's idempotency key covers the whole card (issue 28, 6): a resend with another
card number (the same last four digits) is another request (``conflict``, the key used for
another request), not the first outcome; the number itself is never stored, nor a plain
hash of it."""
from __future__ import annotations

import hashlib

from helpers.market import CARD, listing, start_market

WRONG = "4111111111101111"  # fails the Luhn check, and ends in 1111 as CARD's number does
KEY = "card-fingerprint-key-0001"


def test_a_corrected_card_number_with_the_same_key_is_another_request(tmp_path, unique):
    market = start_market(data_dir=tmp_path)
    try:
        seller, buyer = market.seller(), market.buyer()
        seller.register(unique("sue"))
        buyer.register(unique("bea"))
        item_id = listing(seller)
        buyer("AddItemToCart", item_id=item_id, quantity=1)
        assert WRONG[-4:] == CARD["card_number"][-4:]
        first = buyer.failure_of("MakePurchase", KEY, **{**CARD, "card_number": WRONG})
        assert first.code == "conflict" and "Luhn" in first.message
        again = buyer.failure_of("MakePurchase", KEY, **{**CARD, "card_number": WRONG})
        assert (again.code, again.message) == (first.code, first.message)  # a true resend
        corrected = buyer.failure_of("MakePurchase", KEY, **CARD)
        assert corrected.code == "conflict" and "Luhn" not in corrected.message
        assert "another request" in corrected.message
        assert buyer("DisplayCart")["cart"]["lines"]  # nothing was bought
        stored = b"".join(path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
        for number in (WRONG, CARD["card_number"]):
            assert number.encode() not in stored
            assert hashlib.sha256(number.encode()).hexdigest()[:32].encode() not in stored
    finally:
        market.stop()
