"""The frontends' copies (market/feed.py): a read at either frontend never shows data older
than a write acknowledged to any client, also with a frontend stopped and after a database
restart on its data directory; Stats shows the copies in use and the database's followers."""
from __future__ import annotations

import bisect
import threading
import time

from helpers.market import CARD, listing, sigstop, start_market, wait_until

from market.net.client import Client

ROUNDS = 50  # acknowledged writes each read-after-write loop checks
CONCURRENT_SECONDS = 2.0
READERS = 3


def copies_in_use(market) -> None:
    """Return once both frontends answer from both copies (else a test would only see the
    databases' own answers)."""
    frontends = [market.seller(), market.buyer()]

    def fresh() -> bool:
        return all(copy["fresh"] for api in frontends for copy in api("Stats")["copies"].values())
    assert wait_until(fresh, timeout=10)


def price(api, item_id: int) -> float:
    return api("GetItem", item_id=item_id)["item"]["price"]


def searched(api, keyword: str) -> dict[int, dict]:
    """The items a buyer finds with ``keyword`` (category 4), by id."""
    found = api("SearchItemsForSale", category=4, keywords=[keyword])["items"]
    return {item["item_id"]: item for item in found}


def displayed(seller, item_id: int) -> dict:
    """``item_id`` as its seller sees it in DisplayItemsForSale (the seller frontend has
    no GetItem)."""
    return next(i for i in seller("DisplayItemsForSale")["items"] if i["item_id"] == item_id)


def keyword_listing(seller, keyword: str, quantity: int = 10) -> int:
    return seller("RegisterItemForSale", name="kept", category=4, keywords=[keyword],
                  condition="new", price=1, quantity=quantity)["item_id"]


def test_a_price_change_is_shown_at_once_at_both_frontends(market, seller, buyer, unique):
    keyword = unique("k")
    item_id = keyword_listing(seller, keyword)
    copies_in_use(market)
    for new_price in range(2, ROUNDS + 2):
        seller("ChangeItemPrice", item_id=item_id, price=new_price)
        assert price(buyer, item_id) == new_price
        assert searched(buyer, keyword)[item_id]["price"] == new_price
        assert displayed(seller, item_id)["price"] == new_price


def test_no_read_sent_after_an_acknowledged_write_shows_an_older_price(market, seller, buyer):
    item_id = listing(seller, price=1)
    copies_in_use(market)
    acknowledged: list[tuple[float, int]] = []  # (monotonic time of the ack, price), rising
    seen: list[tuple[float, float]] = []  # (monotonic time the read was sent, price shown)
    lock = threading.Lock()
    ends = time.monotonic() + CONCURRENT_SECONDS

    def write() -> None:
        new_price = 1
        while time.monotonic() < ends:
            new_price += 1
            seller("ChangeItemPrice", item_id=item_id, price=new_price)
            acknowledged.append((time.monotonic(), new_price))

    def read() -> None:
        reader = market.buyer()
        reader.session = buyer.session
        while time.monotonic() < ends:
            sent = time.monotonic()
            shown = price(reader, item_id)
            with lock:
                seen.append((sent, shown))

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read)
                                                  for _ in range(READERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(acknowledged) > 10 and len(seen) > 30
    ack_times = [acked for acked, _ in acknowledged]
    stale = []
    for sent, shown in seen:
        before = bisect.bisect_left(ack_times, sent)  # the writes acknowledged before it
        if before and shown < acknowledged[before - 1][1]:
            stale.append((sent, shown, acknowledged[before - 1]))
    assert stale == []


def test_units_taken_off_sale_or_bought_are_shown_at_once(market, seller, buyer, unique):
    copies_in_use(market)
    keyword = unique("k")
    gone = keyword_listing(seller, keyword, quantity=10)
    sold = keyword_listing(seller, keyword, quantity=10)
    assert set(searched(buyer, keyword)) == {gone, sold}
    seller("UpdateUnitsForSale", item_id=gone, quantity=10)
    assert set(searched(buyer, keyword)) == {sold}
    for bought in range(1, 4):
        buyer("AddItemToCart", item_id=sold, quantity=1)
        buyer("MakePurchase", **CARD)
        assert buyer("GetItem", item_id=sold)["item"]["quantity"] == 10 - bought
        assert displayed(seller, sold)["quantity"] == 10 - bought


def thumbs(api, **args) -> tuple[int, int]:
    rating = api("GetSellerRating", **args)
    return rating["thumbs_up"], rating["thumbs_down"]


def test_a_rating_is_shown_at_once_at_both_frontends(market, seller, buyer, unique):
    copies_in_use(market)
    for vote, expected in [("up", (1, 0)), ("down", (1, 1)), ("up", (2, 1))]:
        item_id = listing(seller)
        buyer("AddItemToCart", item_id=item_id, quantity=1)
        buyer("MakePurchase", **CARD)
        buyer("ProvideFeedback", item_id=item_id, vote=vote)
        assert thumbs(seller) == expected
        assert thumbs(buyer, seller_id=seller.seller_id) == expected
    for _ in range(5):
        newcomer = market.seller()
        seller_id = newcomer.register(unique("newcomer"))
        assert thumbs(buyer, seller_id=seller_id) == (0, 0)


def test_a_stopped_frontend_holds_a_write_back_only_briefly_and_then_shows_it(unique):
    market = start_market(db_timeout=10.0)
    try:
        seller, buyer = market.seller(), market.buyer()
        seller.register(unique("seller"))
        buyer.register(unique("buyer"))
        item_id = listing(seller, price=1)
        copies_in_use(market)
        assert price(buyer, item_id) == 1
        resume = sigstop(market.buyer_server)
        try:
            started = time.monotonic()
            seller("ChangeItemPrice", item_id=item_id, price=2)
            assert time.monotonic() - started < 3.0
        finally:
            resume()
        assert price(buyer, item_id) == 2
    finally:
        market.stop()


def test_a_follower_that_never_confirms_holds_back_no_write(unique):
    """A stranger following the customer database (the open mode lets any local process
    poll) that renews its poll but confirms nothing never holds a lease: a new seller's
    account (a rating, followed) is answered at once, as is a cart change. (It used to
    hold every such write until the frontend's deadline.)"""
    market = start_market(db_timeout=5.0)
    laggard = Client(market.customer_db.address)
    polling = threading.Event()
    try:
        seller, buyer = market.seller(), market.buyer()
        seller.register(unique("seller"))
        buyer.register(unique("buyer"))
        item_id = listing(seller)
        follow = {"follower": "l" * 16, "epoch": "", "seen": 0, "wait_ms": 0}
        follow["epoch"] = laggard.call("Follow", follow)["epoch"]  # joined: a one-page snapshot
        polling.set()

        def renew_without_confirming() -> None:
            while polling.is_set():
                laggard.call("Follow", follow)  # seen stays 0
                time.sleep(0.2)
        threading.Thread(target=renew_without_confirming, daemon=True).start()
        for _ in range(3):
            started = time.monotonic()
            assert "seller_id" in market.seller()("CreateAccount", username=unique("seller"),
                                                  password="pw")
            assert buyer("AddItemToCart", item_id=item_id, quantity=1)["cart"]
            assert time.monotonic() - started < 0.5
        assert laggard.call("Stats")["feed"]["holding"] == 2  # the two frontends only
    finally:
        polling.clear()
        laggard.close()
        market.stop()


def test_a_follower_that_stops_confirming_holds_a_write_for_one_lease_at_most(unique):
    """A follower that confirmed its copy, then polls on without confirming: the writes
    made meanwhile wait for it for at most one lease (1 s), then go at once."""
    market = start_market(db_timeout=5.0)
    laggard = Client(market.customer_db.address)
    try:
        follow = {"follower": "m" * 16, "epoch": "", "seen": 0, "wait_ms": 0}
        snapshot = laggard.call("Follow", follow)
        follow.update(epoch=snapshot["epoch"], seen=snapshot["upto"])
        laggard.call("Follow", follow)  # confirms the snapshot: it holds a lease now
        follow["seen"] = 0  # and from now on confirms nothing
        polling = threading.Event()
        polling.set()

        def renew_without_confirming() -> None:
            while polling.is_set():
                laggard.call("Follow", follow)
                time.sleep(0.1)
        threading.Thread(target=renew_without_confirming, daemon=True).start()
        waits = []
        for _ in range(3):
            started = time.monotonic()
            market.seller()("CreateAccount", username=unique("seller"), password="pw")
            waits.append(time.monotonic() - started)
        polling.clear()
        assert waits[0] < 1.5 and max(waits[1:]) < 0.5, waits
    finally:
        laggard.close()
        market.stop()


def test_stats_show_the_copies_in_use_and_the_databases_followers(market):
    copies_in_use(market)
    for api in (market.seller(), market.buyer()):
        assert api("Stats")["copies"] == {"catalog": {"fresh": True},
                                          "accounts": {"fresh": True}}
    for database in (market.product_db, market.customer_db):
        client = Client(database.address)
        try:
            feed = client.call("Stats", {})["feed"]
            assert feed["followers"] == feed["holding"] == 2
        finally:
            client.close()


def test_after_a_product_db_restart_the_copies_show_every_write(durable_market, unique):
    market = durable_market
    seller, buyer = market.seller(), market.buyer()
    seller.register(unique("seller"))
    buyer.register(unique("buyer"))
    item_ids = [listing(seller, price=price_) for price_ in (1, 2, 3)]
    copies_in_use(market)
    market.product_db.kill()
    market.product_db.restart()
    assert [price(buyer, item_id) for item_id in item_ids] == [1, 2, 3]
    seller("ChangeItemPrice", item_id=item_ids[0], price=7)
    assert price(buyer, item_ids[0]) == 7
    copies_in_use(market)
    for new_price in range(8, 18):
        seller("ChangeItemPrice", item_id=item_ids[1], price=new_price)
        assert price(buyer, item_ids[1]) == new_price
