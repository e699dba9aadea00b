"""Restarting a database never hands one user's data to another, and ids stay short.

A memory-only database forgets its market identity with its data: restarted beside
its partner, which still holds the ids it handed out, it belongs to no market, and
the frontends refuse the pair (``unavailable``) until both are fresh (a new market,
ids from 1 again). With ``--data-dir`` the identity and the ids go on from the saved
state, so no id ever names two things.
"""
from __future__ import annotations

from helpers.identity import MISMATCH, market_of, refused
from helpers.market import CARD, listing, log_of, start_logged, wait_until

BURST = 300  # items listed before the restart


def restart(proc) -> None:
    proc.kill()
    proc.restart()


def serving(api) -> bool:
    """True once ``api``'s frontend serves its databases again (they reconnect)."""
    try:
        api("SearchItemsForSale", category=4)
        return True
    except Exception as error:  # noqa: BLE001 - an ApiError or a transport error
        return getattr(error, "code", "") != "unavailable"


def test_a_memory_only_customer_db_restarted_beside_its_partner_is_refused(
        tmp_path, unique, stoppable):
    market = start_logged(tmp_path)
    stoppable.append(market)
    old = market.seller()
    old.register(unique("old"))
    item_ids = [listing(old, quantity=3) for _ in range(BURST)]
    buyer = market.buyer()
    buyer.register(unique("bob"))
    buyer("AddItemToCart", item_id=item_ids[0], quantity=1)
    buyer("MakePurchase", **CARD)

    restart(market.customer_db)
    new = market.seller()
    assert wait_until(lambda: refused(new), timeout=10)  # no new account, so no new seller
    assert refused(new, "Login", username="anyone", password="pw")
    assert wait_until(lambda: refused(buyer, "GetItem", item_id=item_ids[0]), timeout=10)
    warnings = [line for line in log_of(tmp_path, "seller_server.py").splitlines()
                if "WARNING" in line and MISMATCH in line]
    assert len(warnings) == 1 and market_of(market.product_db) in warnings[0]

    restart(market.product_db)  # both fresh: a new market, with short ids again
    assert wait_until(lambda: not refused(new), timeout=10)
    assert new.register(unique("new")) == 2  # the probe above took 1
    assert listing(new) == 1
    assert [item["item_id"] for item in new("DisplayItemsForSale")["items"]] == [1]
    assert new("GetSellerRating")["items_sold"] == 0
    assert market_of(market.customer_db) == market_of(market.product_db) is not None


def test_a_cart_after_a_product_db_restart_never_shows_another_sellers_item(
        tmp_path, unique, stoppable):
    market = start_logged(tmp_path)
    stoppable.append(market)
    seller = market.seller()
    seller.register(unique("sal"))
    first = listing(seller, name="lamp")
    buyer = market.buyer()
    buyer.register(unique("bo"))
    buyer("AddItemToCart", item_id=first, quantity=1)
    buyer("SaveCart")

    restart(market.product_db)
    assert wait_until(lambda: refused(seller, "DisplayItemsForSale"), timeout=10)
    assert refused(seller, "RegisterItemForSale", name="chair", category=4, keywords=[],
                   condition="new", price=1, quantity=1)
    assert refused(market.seller())  # a new seller's account, in every request after
    assert wait_until(lambda: refused(buyer, "DisplayCart"), timeout=10)
    assert refused(buyer, "MakePurchase", **CARD)


def test_ids_go_on_after_a_burst_and_a_crash_with_a_data_dir(tmp_path, unique, stoppable):
    data = [("--data-dir", str(tmp_path / name)) for name in ("product", "customer")]
    market = start_logged(tmp_path, *data)
    stoppable.append(market)
    seller = market.seller()
    first_seller = seller.register(unique("sal"))
    item_ids = [listing(seller, quantity=2) for _ in range(BURST)]
    assert item_ids == list(range(1, BURST + 1))
    identity = market_of(market.product_db)

    restart(market.product_db)
    restart(market.customer_db)
    assert market_of(market.product_db) == market_of(market.customer_db) == identity
    again = market.seller()
    assert wait_until(lambda: serving(again), timeout=10)
    assert again.register(unique("sal")) == first_seller + 1
    assert listing(again) == BURST + 1
    assert len(again("DisplayItemsForSale")["items"]) == 1
