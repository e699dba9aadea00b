"""A follower holds writes only once its copy is complete and confirmed (issue 28, 4): while
a new buyer frontend builds its copy of a catalog of 50,000 items (many snapshot pages),
the writes made meanwhile at another frontend are answered at their usual speed."""
from __future__ import annotations

import time

from helpers.market import Market, ServiceProcess, wait_until, write_data_dir

from market.frontend.passwords import scrypt

ITEMS = 50_000
MARKET = "0123456789abcdef"
SALT = bytes(range(16))


def big_market(tmp_path) -> Market:
    """A market whose product database holds ``ITEMS`` items of seller 1 (``sue``/``pw``)."""
    write_data_dir(tmp_path / "product", "product_db", [{"kind": "market", "market": MARKET}] + [
        {"kind": "item_registered", "item_id": n, "name": f"item {n}", "category": n % 100,
         "keywords": ["bulk"], "condition": "new", "price": 100, "quantity": 5,
         "seller_id": 1} for n in range(1, ITEMS + 1)])
    write_data_dir(tmp_path / "customer", "customer_db", [
        {"kind": "market", "market": MARKET},
        {"kind": "account", "role": "seller", "user_id": 1, "name": "sue", "salt": SALT.hex(),
         "hash": scrypt("pw", SALT, 10).hex(), "cost": 10}])
    product = ServiceProcess("product_db.py", "--data-dir", str(tmp_path / "product")).start()
    customer = ServiceProcess("customer_db.py", "--data-dir",
                              str(tmp_path / "customer")).start()
    dbs = ("--product-db", product.where, "--customer-db", customer.where, "--db-timeout", "5")
    seller = ServiceProcess("seller_server.py", *dbs).start()
    buyer = ServiceProcess("buyer_server.py", *dbs).start()
    return Market(product, customer, seller, buyer)


def test_writes_do_not_wait_for_a_copy_being_built(tmp_path):
    market = big_market(tmp_path)
    try:
        seller = market.seller()
        seller.login("sue")
        assert wait_until(lambda: seller("Stats")["copies"]["catalog"]["fresh"], timeout=30)
        newcomer = market.another_frontend("buyer_server.py", "--db-timeout", "5")
        stats = market.client_of(newcomer)
        took = []
        price = 1
        started = time.monotonic()
        while not stats("Stats")["copies"]["catalog"]["fresh"]:
            price += 1
            sent = time.monotonic()
            seller("ChangeItemPrice", item_id=1 + price % ITEMS, price=price)
            took.append(time.monotonic() - sent)
            assert time.monotonic() - started < 60
        assert max(took) < 0.5, took
        assert len(took) >= 3, took  # the copy took a while: writes were made meanwhile
    finally:
        market.stop()
