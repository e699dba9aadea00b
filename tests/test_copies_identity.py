"""A copy of another market is never used (contract §12; issue 28, 3): after a memory-only
product database restarts beside a customer database that holds the market, both
frontends refuse (``unavailable``) every request that needs the databases instead of
answering from a copy of the new, empty database, for as long as the pair stays mismatched.
The follow link is checked like the request pool: the same market identity on every
connection a frontend makes."""
from __future__ import annotations

import time

from helpers.market import listing, start_market, wait_until

WATCHED = 3.0  # seconds every read is asked again after the restart


def test_a_memory_only_product_db_restarted_beside_its_partner_is_never_read(unique):
    market = start_market(db_timeout=1.0)
    try:
        seller, buyer = market.seller(), market.buyer()
        seller.register(unique("sue"))
        buyer.register(unique("bea"))
        item_id = listing(seller, name="lamp")
        buyer("AddItemToCart", item_id=item_id, quantity=1)

        def copies_in_use() -> bool:
            return all(copy["fresh"] for api in (seller, buyer)
                       for copy in api("Stats")["copies"].values())
        assert wait_until(copies_in_use, timeout=10)
        market.product_db.kill()
        market.product_db.restart()  # memory only: a new, empty database, no market yet
        # A sleep, the point of the test: no request reaches the frontends while their
        # followers reconnect (and, were they not checked, take a copy of the new database),
        # so nothing but the follow link itself can tell them the market changed.
        time.sleep(1.5)

        reads = [(buyer, "GetItem", {"item_id": item_id}),
                 (buyer, "SearchItemsForSale", {"category": 4}),
                 (buyer, "DisplayCart", {}),
                 (seller, "DisplayItemsForSale", {})]
        answers = []
        ends = time.monotonic() + WATCHED
        while time.monotonic() < ends:
            for api, op, args in reads:
                try:
                    answers.append((op, "ok", api(op, **args)))
                except Exception as error:  # noqa: BLE001 - the code is what is checked
                    answers.append((op, getattr(error, "code", repr(error)), None))
            time.sleep(0.05)
        wrong = [answer for answer in answers if answer[1] != "unavailable"]
        assert not wrong, wrong[:5]
    finally:
        market.stop()
