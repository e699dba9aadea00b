"""Contract §11, purchases and votes: what a client is told is the truth, and a vote or a
purchase finishes without the frontend (issue 16, findings 2 to 5; keyed resends).

Real processes on 127.0.0.1. A ``ReplyDropper`` (tests/helpers/proxy.py) sits between the
frontends and one database where a test loses replies. Buyer frontends settle what
was left unfinished after 1 s (``--settle-after 1``) and wait 2 s for a database.
"""
from __future__ import annotations

import threading
import time

import pytest
from helpers.market import (
    CARD,
    Api,
    Market,
    listing,
    settling_rounds,
    stall,
    wait_until,
)
from helpers.proxy import ReplyDropper

from market.config import DEADLINE_SHARE
from market.keys import fresh_key
from market.net.client import Client
from market.ops.launch import ServiceProcess
from protocol import ApiError, decode, encode, envelope, result_of

DB_TIMEOUT = 2  # seconds a frontend waits for a database
BUYER_ARGS = ("--db-timeout", str(DB_TIMEOUT), "--settle-after", "1")
SETTLED_WITHIN = 15.0  # seconds: a settling round every 0.5 s, a stalled request 2 x 2 s


class ProxiedMarket(Market):
    """A market whose frontends reach ``proxied`` ("product_db" or "customer_db") through a
    ``ReplyDropper``; ``another_buyer_frontend()`` starts another buyer frontend."""

    def __init__(self, proxied: str | None = None) -> None:
        product_db = ServiceProcess("product_db.py").start()
        customer_db = ServiceProcess("customer_db.py").start()
        self.proxy = ReplyDropper((product_db if proxied == "product_db"
                                   else customer_db).address) if proxied else None
        self.addresses = {name: "%s:%d" % db.address
                          for name, db in (("product_db", product_db),
                                           ("customer_db", customer_db))}
        if proxied:
            self.addresses[proxied] = self.proxy.addr
        super().__init__(product_db, customer_db,
                         self._frontend("seller_server.py", "--db-timeout", "2"),
                         self._frontend("buyer_server.py", *BUYER_ARGS))

    def _frontend(self, script: str, *args: str) -> ServiceProcess:
        return ServiceProcess(script, "--product-db", self.addresses["product_db"],
                              "--customer-db", self.addresses["customer_db"], *args).start()

    def another_buyer_frontend(self) -> Api:
        """A client of a second buyer frontend of this market."""
        self.extra.append(self._frontend("buyer_server.py", *BUYER_ARGS))  # stopped with it
        return self.client_of(self.extra[-1])

    def stop(self) -> None:
        super().stop()
        if self.proxy:
            self.proxy.close()


@pytest.fixture(scope="module")
def make_market():
    """One market per proxied database, shared by the module's tests (each test has its
    own seller, item and buyer, and leaves the processes running and the proxy forwarding)."""
    markets: dict[str | None, ProxiedMarket] = {}

    def make(proxied: str | None = None) -> ProxiedMarket:
        if proxied not in markets:
            markets[proxied] = ProxiedMarket(proxied)
        return markets[proxied]
    yield make
    for market in markets.values():
        market.stop()


class Shopper:
    """A seller with one item and a buyer (waiting 30 s for its frontend) who bought it."""

    def __init__(self, market: ProxiedMarket, buy: bool = True) -> None:
        self.market = market
        self.seller = market.seller()
        self.seller_id = self.seller.register(f"seller{fresh_key()[:8]}")
        self.item_id = listing(self.seller, quantity=10)
        self.buyer = market.client_of(market.buyer_server)
        self.name = f"buyer{fresh_key()[:8]}"
        self.buyer.register(self.name)
        if buy:
            self.buyer("AddItemToCart", item_id=self.item_id, quantity=1)
            self.buyer("MakePurchase", **CARD)

    def thumbs(self) -> tuple[int, int]:
        """(the item's thumbs up, its seller's thumbs up)."""
        return (self.seller("DisplayItemsForSale")["items"][0]["thumbs_up"],
                self.seller("GetSellerRating")["thumbs_up"])

    def vote(self, key: str | None = None, api: Api | None = None) -> str:
        """ProvideFeedback "up": "ok" or the error code."""
        try:
            keyed_call(api or self.buyer, "ProvideFeedback", key, item_id=self.item_id,
                       vote="up")
            return "ok"
        except ApiError as error:
            return error.code

    def vote_again_until_counted(self) -> tuple[int, int]:
        """Vote until the vote counts (a refused earlier vote is dropped by the settlers),
        or until it counted already; the thumbs then."""
        deadline = time.monotonic() + SETTLED_WITHIN
        while time.monotonic() < deadline:
            if self.thumbs() == (1, 1) or self.vote() == "ok":
                break
            time.sleep(0.2)
        return self.thumbs()


def keyed_call(api: Api, op: str, key: str | None, **args) -> dict:
    """``op`` with ``idempotency_key`` = ``key`` (none if None)."""
    message = envelope(op, args, api.session)
    if key is not None:
        message["idempotency_key"] = key
    line = api.client.exchange(lambda: encode(message))
    return result_of(decode(line))


def recorded_votes(customer_db: Client) -> int:
    """Votes the customer database has recorded so far (``RecordVote`` answered ok)."""
    return customer_db.call("Stats")["ops"].get("RecordVote", {}).get("ok", 0)


def outcome(call, *args, **kwargs) -> str:
    try:
        call(*args, **kwargs)
        return "ok"
    except ApiError as error:
        return error.code


# -- finding 2: the frontend dies while the product database stalls ---------------------

def test_a_vote_finishes_on_both_sides_or_neither_when_its_frontend_dies(make_market):
    """Finding: product db stopped, vote sent, frontend killed after 1 s, product db resumed
    past the deadline: seller 1 up, item 0, and voting again was `conflict` for good."""
    market = make_market()
    shop = Shopper(market)
    customer_db = Client(market.customer_db.address)
    market.clients.append(customer_db)
    recorded_before = recorded_votes(customer_db)
    resume = stall(market, market.product_db)
    try:
        answered: list[str] = []
        thread = threading.Thread(target=lambda: answered.append(shop.vote(fresh_key())))
        thread.start()
        # Step 1 done, the vote recorded at the customer database: the frontend goes on to
        # send it to the stalled product database and waits there (up to 2 s) ...
        assert wait_until(lambda: recorded_votes(customer_db) > recorded_before, interval=0.02)
        time.sleep(0.2)  # ... a moment to send it (nothing shows it has), then dies
        market.buyer_server.kill()  # SIGKILL
        killed = time.monotonic()
        thread.join(10)
        assert answered == ["deadline_exceeded"]  # its client's: the frontend died
        # A sleep, the point of the test: the product database wakes up only once the
        # deadline of the RecordVote it holds has passed (sent before the kill, with
        # DEADLINE_SHARE of the frontend's 2 s), so it must refuse it then.
        time.sleep(max(0.0, killed + DEADLINE_SHARE * DB_TIMEOUT + 0.25 - time.monotonic()))
    finally:
        resume()
    market.buyer_server.restart()  # any buyer frontend settles any vote
    shop.buyer.client = Client(market.buyer_server.address, timeout=30)
    market.clients.append(shop.buyer.client)
    assert shop.vote_again_until_counted() == (1, 1)
    settling_rounds(market, 2)  # settling rounds later it still holds
    assert shop.thumbs() == (1, 1) and shop.vote() == "conflict"


# -- finding 3: a reply of RecordVote (customer) or CountVote (product) lost --------------

@pytest.mark.parametrize("database", ["customer_db", "product_db"])
@pytest.mark.parametrize("lost", [1, 2])
def test_a_vote_whose_reply_is_lost_counts_once_on_both(make_market, database, lost):
    """Finding: RecordFeedback applied but its reply lost: `unavailable`, seller 1 up, item 0,
    and a second vote `conflict`. Now: one lost reply is asked again (ok); two leave the
    vote to the settlers: counted on both, or on neither and the buyer votes again."""
    market = make_market(database)
    shop = Shopper(market)
    op = "RecordVote" if database == "customer_db" else "CountVote"
    dropped_before = market.proxy.dropped[op]
    market.proxy.drop(op, lost)
    key = fresh_key()
    answer = shop.vote(key)
    assert market.proxy.dropped[op] - dropped_before == lost
    if lost == 1:  # the frontend asked again with the same key and learned the outcome
        assert answer == "ok" and shop.thumbs() == (1, 1)
    assert answer in ("ok", "deadline_exceeded")
    assert shop.vote(key) in ("ok", "conflict")  # counted, or not counted: never unknown
    assert shop.vote_again_until_counted() == (1, 1)
    settling_rounds(market, 2)
    assert shop.thumbs() == (1, 1) and shop.vote() == "conflict"


# -- finding 4: the item's vote applied, its reply lost, the product db then away -------

def test_a_vote_counted_on_the_item_is_not_counted_twice_after_a_crash(make_market):
    """Finding: AddVote applied, its reply lost, the product database then unreachable: the
    undo waited in the frontend's memory; the frontend killed, a second vote made the item
    2 up and the seller 1."""
    market = make_market("product_db")
    shop = Shopper(market)
    market.proxy.drop("CountVote", 1, then_cut=True)
    assert shop.vote(fresh_key()) == "deadline_exceeded"
    market.buyer_server.kill()
    market.proxy.reconnect()
    market.buyer_server.restart()
    shop.buyer.client = Client(market.buyer_server.address, timeout=30)
    market.clients.append(shop.buyer.client)
    assert shop.vote_again_until_counted() == (1, 1)
    settling_rounds(market, 2)
    assert shop.thumbs() == (1, 1) and shop.vote() == "conflict"


# -- finding 5: both replies of CommitPurchase lost ---------------------------------------

def test_a_recorded_purchase_is_never_answered_unavailable(make_market):
    """Finding: both replies of CommitPurchase lost: the settle learned "sold" and still
    answered `unavailable`; a retry said "nothing to buy"."""
    market = make_market("customer_db")
    shop = Shopper(market, buy=False)
    shop.buyer("AddItemToCart", item_id=shop.item_id, quantity=2)
    dropped_before = market.proxy.dropped["CommitPurchase"]
    market.proxy.drop("CommitPurchase", 2)
    key = fresh_key()
    try:
        purchase = keyed_call(shop.buyer, "MakePurchase", key, **CARD)["purchase"]
    except ApiError as error:
        assert error.code == "deadline_exceeded", error
        purchase = keyed_call(shop.buyer, "MakePurchase", key, **CARD)["purchase"]
    assert market.proxy.dropped["CommitPurchase"] - dropped_before == 2
    assert keyed_call(shop.buyer, "MakePurchase", key, **CARD)["purchase"] == purchase
    history = shop.buyer("GetBuyerPurchases")
    assert [p["purchase_id"] for p in history["purchases"]] == [purchase["purchase_id"]]
    assert shop.buyer("GetItem", item_id=shop.item_id)["item"]["quantity"] == 8


# -- keyed resends at a second frontend -------------------------------------------------

def test_a_keyed_purchase_resent_at_another_frontend_gets_the_first_outcome(make_market):
    market = make_market()
    shop = Shopper(market, buy=False)
    other = market.another_buyer_frontend()
    other.session = shop.buyer.session
    empty = fresh_key()
    first = outcome(keyed_call, shop.buyer, "MakePurchase", empty, **CARD)
    shop.buyer("AddItemToCart", item_id=shop.item_id, quantity=2)
    assert first == outcome(keyed_call, other, "MakePurchase", empty, **CARD) == "conflict"
    key = fresh_key()
    purchase = keyed_call(shop.buyer, "MakePurchase", key, **CARD)["purchase"]
    assert keyed_call(other, "MakePurchase", key, **CARD)["purchase"] == purchase
    other_card = {**CARD, "card_name": "Someone Else"}
    assert outcome(keyed_call, other, "MakePurchase", key, **other_card) == "conflict"
    assert shop.buyer("GetBuyerPurchases")["items_purchased"] == 2
    assert shop.buyer("GetItem", item_id=shop.item_id)["item"]["quantity"] == 8


def test_a_purchase_refused_is_refused_the_same_when_resent(make_market):
    """A purchase cancelled for a final reason (too few units) tells a resend that reason,
    even once the cart could be bought."""
    market = make_market()
    shop = Shopper(market, buy=False)
    shop.buyer("AddItemToCart", item_id=shop.item_id, quantity=10)
    rival = market.client_of(market.buyer_server)
    rival.register(f"rival{fresh_key()[:8]}")
    rival("AddItemToCart", item_id=shop.item_id, quantity=1)
    rival("MakePurchase", **CARD)  # 9 left: the first cart is one too many
    key = fresh_key()
    with pytest.raises(ApiError) as first:
        keyed_call(shop.buyer, "MakePurchase", key, **CARD)
    assert first.value.code == "conflict"
    shop.buyer("RemoveItemFromCart", item_id=shop.item_id, quantity=1)  # 9: could be bought
    resend_at = market.another_buyer_frontend()
    resend_at.session = shop.buyer.session
    with pytest.raises(ApiError) as again:
        keyed_call(resend_at, "MakePurchase", key, **CARD)
    assert (again.value.code, again.value.message) == (first.value.code, first.value.message)
    assert shop.buyer("GetItem", item_id=shop.item_id)["item"]["quantity"] == 9


def test_a_keyed_vote_resent_at_another_frontend_gets_the_first_outcome(make_market):
    market = make_market()
    shop = Shopper(market)
    other = market.another_buyer_frontend()
    other.session = shop.buyer.session
    key = fresh_key()
    assert shop.vote(key) == "ok"
    assert shop.vote(key, other) == "ok" and shop.thumbs() == (1, 1)
    assert shop.vote(fresh_key(), other) == "conflict"  # a new vote: already rated
    with pytest.raises(ApiError) as other_request:
        keyed_call(other, "ProvideFeedback", key, item_id=shop.item_id, vote="down")
    assert other_request.value.code == "conflict" and shop.thumbs() == (1, 1)
