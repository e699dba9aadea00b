"""Growth (spec section 8): paged lists, cursors, pages bounded in bytes, the cart cap,
and no reply over 1 MiB, over real sockets against real service processes.

One module-scoped marketplace; the heavy data (1,001 long-named items, a cart of
1,000 lines and three purchases of 1,000 lines each) is built once by ``big``.
``MARKET_BIG_TESTS=1`` adds a variant at the spec's scale (12,000 items of one seller).
"""
from __future__ import annotations

import json
import os
import re
import statistics
import threading
import time
from types import SimpleNamespace

import pytest
from helpers.cli import cli
from helpers.market import CARD, Api, failure, listing, start_market, unique_name
from helpers.wire import Wire, line_of

from market.config import CART_MAX
from market.net.client import Client
from market.paging import PAGE_BYTES
from protocol import MAX_LINE

BIG_TESTS = os.environ.get("MARKET_BIG_TESTS") == "1"
BAD_LIMITS = [0, -1, 501, "5", True, 1.5]
# The customer database cancels a purchase pending longer than this (seconds); a second
# buyer frontend holds each purchase longer than that between reserving and committing.
PURCHASE_TIMEOUT = 2
COMMIT_DELAY = 4.5

def big_name(i: int) -> str:
    """A 32-character item name of 88 UTF-8 bytes, distinct for each ``i``."""
    return f"{i:04d}" + "€" * 28


# -- plain sockets (helpers.wire), to measure the bytes of a reply ---------------------

def bounded(wire: Wire, message: dict | bytes) -> bytes:
    """The raw reply line to ``message``, checked to be one line of at most MAX_LINE bytes."""
    reply = wire.exchange(message if isinstance(message, bytes) else line_of(message),
                          limit=MAX_LINE + 2)  # enough to see an oversize reply
    assert reply.endswith(b"\n") and len(reply) <= MAX_LINE + 1, \
        f"reply of {len(reply)} bytes, not one line of at most {MAX_LINE}"
    return reply


def measured(wire: Wire, op: str, args: dict | None = None, session: str | None = None,
             request_id=1) -> tuple[dict, int]:
    """The decoded reply envelope and the reply line's length in bytes."""
    message = {"op": op, "args": args or {}, "id": request_id}
    if session:
        message["session"] = session
    reply = bounded(wire, message)
    return json.loads(reply), len(reply)


def ok_result(envelope: dict) -> dict:
    assert envelope.get("ok") is True, envelope
    return envelope["result"]


def error_code(envelope: dict) -> str:
    assert envelope.get("ok") is False, envelope
    return envelope["error"]["code"]


# -- paging helpers --------------------------------------------------------------

def all_pages(api: Api, op: str, key: str, after: str | None = None, **args) -> list[dict]:
    """Every page of a paged list from ``after`` on, following ``next`` until it is null."""
    pages = []
    for _ in range(10_000):
        result = api(op, **args, **({} if after is None else {"after": after}))
        pages.append(result)
        after = result["next"]
        if after is None:
            return pages
        assert result[key], f"an empty page while more remain: {result}"
    raise AssertionError("paging did not end")


def ids_of(items: list[dict]) -> list[int]:
    return [item["item_id"] for item in items]


def buy(buyer: Api, item_id: int, units: int) -> dict:
    buyer("AddItemToCart", item_id=item_id, quantity=units)
    return buyer("MakePurchase", **CARD)["purchase"]


# -- the marketplace and the heavy data ------------------------------------------

@pytest.fixture(scope="module")
def market():
    """This module's marketplace; ``slow_buyer`` is a second buyer frontend whose
    purchases outlast the customer database's purchase timeout. (Its own, not conftest's:
    the customer database's purchase timeout is short, and the ``seller`` fixture the
    tests take is a seller of this market.)"""
    m = start_market(customer_args=("--purchase-timeout", str(PURCHASE_TIMEOUT)))
    m.slow_buyer = m.another_frontend("buyer_server.py", "--test-commit-delay", str(COMMIT_DELAY))
    yield m
    m.stop()


def fill_cart(buyer: Api, item_ids: list[int], threads: int = 3) -> None:
    """One unit of each item into the buyer's cart, from a few threads at once."""
    errors: list[BaseException] = []

    def add(share: list[int]) -> None:
        try:
            for item_id in share:
                buyer("AddItemToCart", item_id=item_id, quantity=1)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    workers = [threading.Thread(target=add, args=(item_ids[n::threads],))
               for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not errors, errors[:3]


@pytest.fixture(scope="module")
def big(market):
    """A seller with CART_MAX + 1 items of 32-character multi-byte names and long prices
    (category 90, keyword 'bulk', 10 units each, so that three purchases of them
    overflow one page's byte budget whatever the ids' length); a buyer whose session ``cart`` holds the first
    CART_MAX of them (1 unit each, saved); three purchases of that cart, by three other
    sessions of the buyer; and a fourth such session, ``waiting``, not bought yet."""
    seller = market.seller()
    seller_name = unique_name("bigseller")
    seller.seller_id = seller.register(seller_name)
    item_ids = [seller("RegisterItemForSale", name=big_name(i), category=90, keywords=["bulk"],
                       condition="new", price=99_999.99, quantity=10)["item_id"]
                for i in range(CART_MAX + 1)]
    name = unique_name("bigbuyer")
    cart = market.buyer()
    cart.buyer_id = cart.register(name)
    fill_cart(cart, item_ids[:CART_MAX])
    cart("SaveCart")
    sessions = []
    for _ in range(4):  # each login starts from the saved cart: CART_MAX lines
        session = market.buyer()
        session.login(name)
        sessions.append(session)
    purchases = [session("MakePurchase", **CARD)["purchase"] for session in sessions[:3]]
    return SimpleNamespace(seller=seller, seller_name=seller_name, item_ids=item_ids,
                           buyer_name=name, cart=cart, purchases=purchases,
                           waiting=sessions[3])


# -- 1. items paging ---------------------------------------------------------------

def test_items_come_in_pages_of_100_by_item_id(market, seller):
    ids = [listing(seller, name=f"p{i}", quantity=1) for i in range(250)]
    sold_out = {ids[0], ids[99], ids[100], ids[249]}
    for item_id in sold_out:
        seller("UpdateUnitsForSale", item_id=item_id, quantity=1)
    other = market.seller()
    other.register(unique_name("other"))
    listing(other, name="not mine")  # another seller's item, between the pages' ids
    pages = all_pages(seller, "DisplayItemsForSale", "items")
    assert [len(page["items"]) for page in pages] == [100, 100, 50]
    assert [page["next"] is None for page in pages] == [False, False, True]
    shown = [item for page in pages for item in page["items"]]
    assert ids_of(shown) == ids  # ascending, each exactly once, nobody else's
    assert all(item["seller_id"] == seller.seller_id for item in shown)
    assert {item["item_id"] for item in shown if item["quantity"] == 0} == sold_out
    assert all(item["quantity"] == 1 for item in shown if item["item_id"] not in sold_out)

    for limit in BAD_LIMITS:
        assert seller.error("DisplayItemsForSale", limit=limit) == "bad_request", limit
    whole = seller("DisplayItemsForSale", limit=500)
    assert ids_of(whole["items"]) == ids and whole["next"] is None
    exact = seller("DisplayItemsForSale", limit=250)  # exactly what is left: no next
    assert ids_of(exact["items"]) == ids and exact["next"] is None
    first = seller("DisplayItemsForSale", limit=1)
    assert ids_of(first["items"]) == ids[:1] and isinstance(first["next"], str)
    rest = seller("DisplayItemsForSale", limit=500, after=first["next"])
    assert ids_of(rest["items"]) == ids[1:] and rest["next"] is None
    assert seller("DisplayItemsForSale", limit=249)["next"] is not None


def test_a_seller_without_items_gets_an_empty_last_page(market):
    seller = market.seller()
    seller.register(unique_name("empty"))
    assert seller("DisplayItemsForSale") == {"items": [], "next": None}


# -- 2. paging while the list grows ------------------------------------------------

def test_items_added_while_paging_appear_at_the_end(market, seller):
    ids = [listing(seller, name=f"g{i}") for i in range(30)]
    other = market.seller()
    other.register(unique_name("rival"))
    seen, after, turns = [], None, 0
    while True:
        page = seller("DisplayItemsForSale", limit=7,
                      **({} if after is None else {"after": after}))
        assert page["items"] or page["next"] is None
        seen += ids_of(page["items"])
        after = page["next"]
        if after is None:
            break
        turns += 1
        if turns <= 4:  # the list grows between pages; items already shown change
            ids += [listing(seller, name=f"new{turns}.{i}") for i in range(3)]
            listing(other, name="theirs")
            seller("ChangeItemPrice", item_id=seen[0], price=9)
            seller("UpdateUnitsForSale", item_id=seen[-1], quantity=10)  # now 0 units
    assert len(ids) == 42
    assert seen == ids  # nothing missed, nothing repeated, in order
    # The last page's null stays right; an item added after it is on a new first read.
    late = listing(seller, name="late")
    assert ids_of(all_pages(seller, "DisplayItemsForSale", "items", limit=500)[0]["items"]) \
        == ids + [late]


# -- 3. cursors ---------------------------------------------------------------------

def test_malformed_and_foreign_cursors_are_bad_requests(market, seller, buyer):
    ids = [listing(seller, name=f"c{i}") for i in range(3)]
    first = seller("DisplayItemsForSale", limit=1)
    mine = first["next"]
    assert isinstance(mine, str)
    other = market.seller()
    other.register(unique_name("foreign"))
    listing(other, name="a")
    listing(other, name="b")
    theirs = other("DisplayItemsForSale", limit=1)["next"]
    assert isinstance(theirs, str) and theirs != mine

    for _ in range(2):
        buy(buyer, ids[2], 1)
    purchases_next = buyer("GetBuyerPurchases", limit=1)["next"]
    assert isinstance(purchases_next, str)
    second_buyer = market.buyer()
    second_buyer.register(unique_name("buyer"))
    buy(second_buyer, ids[2], 1)
    buy(second_buyer, ids[2], 1)
    second_next = second_buyer("GetBuyerPurchases", limit=1)["next"]
    assert isinstance(second_next, str)

    items_before = seller("DisplayItemsForSale", limit=500)
    purchases_before = buyer("GetBuyerPurchases")
    malformed = ["x", "items.1", 5, "", "a" * 200, mine + "0" * 30, mine + ".1", " " + mine,
                 mine.upper(), ["items"], {"after": mine}, 1.5, True, "\u0663"]
    for after in malformed + [theirs, purchases_next]:
        assert seller.error("DisplayItemsForSale", after=after) == "bad_request", after
    for after in malformed + [second_next, mine]:
        assert buyer.error("GetBuyerPurchases", after=after) == "bad_request", after

    assert seller("DisplayItemsForSale", limit=500) == items_before
    assert buyer("GetBuyerPurchases") == purchases_before
    # The good cursors still work, the same as before.
    again = seller("DisplayItemsForSale", limit=1, after=mine)
    assert again["items"] == items_before["items"][1:2] and isinstance(again["next"], str)
    assert ids_of(seller("DisplayItemsForSale", after=mine)["items"]) == ids[1:]
    rest = buyer("GetBuyerPurchases", after=purchases_next)
    assert rest["purchases"] == purchases_before["purchases"][1:] and rest["next"] is None


# -- 4. purchases paging ------------------------------------------------------------

def test_purchases_come_in_pages_oldest_first(market, seller, buyer):
    item = listing(seller, name="widget", quantity=100)
    assert buyer("GetBuyerPurchases") == {"purchases": [], "next": None, "items_purchased": 0}
    bought = [buy(buyer, item, units) for units in range(1, 6)]
    pages = all_pages(buyer, "GetBuyerPurchases", "purchases", limit=2)
    assert [len(page["purchases"]) for page in pages] == [2, 2, 1]
    assert [page["items_purchased"] for page in pages] == [15, 15, 15]
    shown = [p for page in pages for p in page["purchases"]]
    assert [p["purchase_id"] for p in shown] == [p["purchase_id"] for p in bought]
    assert [p["lines"][0]["quantity"] for p in shown] == [1, 2, 3, 4, 5]
    assert shown == bought
    whole = buyer("GetBuyerPurchases")
    assert whole == {"purchases": bought, "next": None, "items_purchased": 15}
    for limit in BAD_LIMITS:
        assert buyer.error("GetBuyerPurchases", limit=limit) == "bad_request", limit
    assert buyer("GetBuyerPurchases", limit=5)["next"] is None

    # Purchases made while paging appear at the end.
    page = buyer("GetBuyerPurchases", limit=2)
    bought.append(buy(buyer, item, 6))
    rest = all_pages(buyer, "GetBuyerPurchases", "purchases", limit=2, after=page["next"])
    assert [len(p["purchases"]) for p in rest] == [2, 2]
    assert [p["items_purchased"] for p in rest] == [21, 21]
    assert page["purchases"] + [p for r in rest for p in r["purchases"]] == bought


# -- 5. a page cut short by size, never empty ----------------------------------------

def test_a_page_is_cut_short_by_size_but_never_empty(market, big):
    sizes = [len(line_of(p)) - 1 for p in big.purchases]
    assert all(150_000 < size < 300_000 for size in sizes), sizes
    assert sum(sizes) > PAGE_BYTES  # three do not fit in one page's budget
    buyer = market.buyer()
    buyer.login(big.buyer_name)
    wire = Wire(market.buyer_server.address, timeout=60)
    shown, after, counts = [], None, []
    for _ in range(4):
        args = {"limit": 100} if after is None else {"limit": 100, "after": after}
        envelope, size = measured(wire, "GetBuyerPurchases", args, buyer.session)
        result = ok_result(envelope)
        assert size <= MAX_LINE + 1
        assert result["items_purchased"] == 3 * CART_MAX
        counts.append(len(result["purchases"]))
        shown += result["purchases"]
        after = result["next"]
        if after is None:
            break
    assert 1 <= counts[0] < 3, counts
    assert all(counts) and sum(counts) == 3, counts
    assert [p["purchase_id"] for p in shown] == [p["purchase_id"] for p in big.purchases]
    assert shown == big.purchases
    assert [len(p["lines"]) for p in shown] == [CART_MAX] * 3
    assert {line["name"] for line in shown[0]["lines"]} == \
        {big_name(i) for i in range(CART_MAX)}
    # limit 1: one purchase a page, each once.
    pages = all_pages(buyer, "GetBuyerPurchases", "purchases", limit=1)
    assert [len(page["purchases"]) for page in pages] == [1, 1, 1]
    wire.close()


# -- 6. the cart cap ---------------------------------------------------------------

def cart_lines(result: dict) -> list[tuple[int, int]]:
    return [(line["item_id"], line["quantity"]) for line in result["cart"]["lines"]]


def test_a_cart_holds_at_most_1000_distinct_items(market, big):
    cart = big.cart
    wire = Wire(market.buyer_server.address, timeout=60)
    envelope, size = measured(wire, "DisplayCart", {}, cart.session)
    before = ok_result(envelope)
    assert size <= MAX_LINE + 1
    assert sorted(cart_lines(before)) == [(item_id, 1) for item_id in big.item_ids[:CART_MAX]]
    extra, first = big.item_ids[CART_MAX], big.item_ids[0]

    envelope, size = measured(wire, "AddItemToCart", {"item_id": extra, "quantity": 1},
                              cart.session)
    assert error_code(envelope) == "conflict" and size <= MAX_LINE + 1
    assert cart("DisplayCart") == before  # nothing changed
    assert cart("GetItem", item_id=extra)["item"]["quantity"] == 10

    envelope, size = measured(wire, "AddItemToCart", {"item_id": first, "quantity": 2},
                              cart.session)
    after = ok_result(envelope)  # more units of a line already there: fine
    assert size <= MAX_LINE + 1
    assert len(after["cart"]["lines"]) == CART_MAX
    assert dict(cart_lines(after))[first] == 3
    for op in ("SaveCart", "DisplayCart"):
        envelope, size = measured(wire, op, {}, cart.session)
        assert size <= MAX_LINE + 1 and cart_lines(ok_result(envelope)) == cart_lines(after)

    # Room again once a line is gone; then full again.
    cart("RemoveItemFromCart", item_id=first, quantity=3)
    assert len(cart("DisplayCart")["cart"]["lines"]) == CART_MAX - 1
    lines = cart_lines(cart("AddItemToCart", item_id=extra, quantity=1))
    assert len(lines) == CART_MAX and (extra, 1) in lines
    assert cart.error("AddItemToCart", item_id=first, quantity=1) == "conflict"
    assert cart_lines(cart("DisplayCart")) == lines
    wire.close()


def test_a_cancelled_purchase_does_not_overfill_the_cart(market, big):
    """A purchase's lines go back into the cart when it is cancelled; with a new item
    added meanwhile, that must still leave at most CART_MAX distinct items."""
    session = big.waiting
    slow = Api(Client(market.slow_buyer.address, timeout=30))
    slow.session = session.session
    assert len(session("DisplayCart")["cart"]["lines"]) == CART_MAX
    outcome: list = []

    def purchase() -> None:
        try:
            outcome.append(slow("MakePurchase", **CARD))
        except Exception as error:  # noqa: BLE001 - checked below
            outcome.append(error)

    thread = threading.Thread(target=purchase)
    thread.start()
    deadline = time.monotonic() + 5
    while session("DisplayCart")["cart"]["lines"] and time.monotonic() < deadline:
        time.sleep(0.02)  # until the purchase has taken the cart's lines
    assert session("DisplayCart")["cart"]["lines"] == []
    # The purchase's lines still count: a new item would overfill the cart on a cancel.
    assert failure(session, "AddItemToCart", item_id=big.item_ids[CART_MAX],
                   quantity=1).code == "conflict"
    session("AddItemToCart", item_id=big.item_ids[0], quantity=1)  # one it holds: fine
    thread.join(30)
    slow.client.close()
    assert len(outcome) == 1
    assert getattr(outcome[0], "code", None) == "conflict", outcome  # cancelled: too slow
    lines = session("DisplayCart")["cart"]["lines"]
    assert len(lines) == CART_MAX, f"the cart holds {len(lines)} distinct items"
    assert big.item_ids[CART_MAX] not in {line["item_id"] for line in lines}


# -- 7. no reply over 1 MiB ----------------------------------------------------------

def assert_too_large(envelope: dict, sent_id: str) -> None:
    """A reply that could not carry its result beside ``sent_id``: ``too_large``, with
    the id echoed only if the error reply still fits (``Wire`` checked its size)."""
    assert error_code(envelope) == "too_large"
    assert envelope["id"] in (None, sent_id)
    if envelope["id"] is not None:
        assert len(line_of(envelope)) <= MAX_LINE + 1


def test_a_huge_id_never_makes_a_reply_over_one_mib(market, big):
    seller = market.seller()
    seller.login(big.seller_name)
    wire = Wire(market.seller_server.address, timeout=60)
    args = {"limit": 500}
    small, small_size = measured(wire, "DisplayItemsForSale", args, seller.session, request_id="")
    page = ok_result(small)
    assert len(page["items"]) == 500 and small_size > 100_000

    # The id fits in the request line, but not beside this result in the reply.
    skeleton = len(line_of({"op": "DisplayItemsForSale", "args": args,
                            "session": seller.session, "id": ""})) - 1
    huge = "i" * (MAX_LINE - skeleton)
    assert small_size + len(huge) > MAX_LINE + 1
    envelope, size = measured(wire, "DisplayItemsForSale", args, seller.session, request_id=huge)
    assert_too_large(envelope, huge)

    # An id that just fits is echoed: a reply of exactly MAX_LINE bytes (plus newline).
    one, one_size = measured(wire, "DisplayItemsForSale", {"limit": 1}, seller.session,
                             request_id="")
    fits = "f" * (MAX_LINE + 1 - one_size)
    envelope, size = measured(wire, "DisplayItemsForSale", {"limit": 1}, seller.session,
                              request_id=fits)
    assert size == MAX_LINE + 1
    assert envelope == {**one, "id": fits}
    envelope, size = measured(wire, "DisplayItemsForSale", {"limit": 1}, seller.session,
                              request_id=fits + "f")
    assert_too_large(envelope, fits + "f")

    # The same connection goes on serving.
    again, _ = measured(wire, "DisplayItemsForSale", args, seller.session, request_id=7)
    assert again == {**small, "id": 7}
    wire.close()

    # A buyer's search of 500 long-named items, with a ~900 KB id.
    buyer = market.buyer()
    buyer.login(big.buyer_name)
    wire = Wire(market.buyer_server.address, timeout=60)
    search = {"category": 90, "keywords": ["bulk"], "limit": 500}
    found, found_size = measured(wire, "SearchItemsForSale", search, buyer.session, request_id=0)
    assert len(ok_result(found)["items"]) == 500
    big_id = "s" * 900_000
    envelope, size = measured(wire, "SearchItemsForSale", search, buyer.session, request_id=big_id)
    assert size <= MAX_LINE + 1
    if found_size - 1 + len(big_id) + 2 <= MAX_LINE + 1:
        assert envelope == {**found, "id": big_id}
    else:
        assert_too_large(envelope, big_id)
    assert measured(wire, "SearchItemsForSale", search, buyer.session, request_id=1)[0] == \
        {**found, "id": 1}
    wire.close()


@pytest.mark.parametrize("service", ["product_db", "customer_db", "seller_server",
                                     "buyer_server"])
def test_a_request_of_exactly_one_mib_gets_a_bounded_reply(market, service):
    """Every service: a Hello whose id fills the request line to MAX_LINE bytes would
    echo it in a longer reply; the reply is too_large with a null id instead, and the
    connection keeps serving."""
    wire = Wire(getattr(market, service).address, timeout=60)
    skeleton = len(line_of({"op": "Hello", "id": ""})) - 1
    request = line_of({"op": "Hello", "id": "h" * (MAX_LINE - skeleton)})
    assert len(request) == MAX_LINE + 1
    envelope = json.loads(bounded(wire, request))
    assert_too_large(envelope, "h" * (MAX_LINE - skeleton))
    envelope, _ = measured(wire, "Hello", request_id=2)
    assert envelope["ok"] is True and envelope["id"] == 2
    wire.close()


# -- 8. search: the best `limit` matches, in the contract's order --------------------

def test_search_returns_the_best_matches_in_order(market, seller):
    """Most shared keywords first, ties by item_id; only in-stock items of the category."""
    w1, w2, w3, w4 = (unique_name("k")[-8:] for _ in range(4))

    def item(keywords: list[str], category: int = 61, quantity: int = 5) -> int:
        return seller("RegisterItemForSale", name="s", category=category, keywords=keywords,
                      condition="used", price=2, quantity=quantity)["item_id"]

    one_a = item([w1])
    three_a = item([w1, w2, w3])
    one_b = item([w4, w2])
    two_a = item([w2, w1])
    three_b = item([w3, w4, w2, w1])
    two_b = item([w1, w3])
    one_c = item([w3])
    three_c = item([w2, w3, w1], quantity=1)
    seller("UpdateUnitsForSale", item_id=item([w1, w2, w3], quantity=1), quantity=1)  # 0 units
    item([w1, w2, w3], category=62)  # another category
    only_w4 = item([w4])  # shares none of w1, w2, w3
    buyer = market.buyer()
    buyer.register(unique_name("searcher"))

    def search(limit: int, keywords=(w1, w2, w3)) -> list[int]:
        return ids_of(buyer("SearchItemsForSale", category=61, keywords=list(keywords),
                            limit=limit)["items"])

    best = [three_a, three_b, three_c, two_a, two_b, one_a, one_b, one_c]
    assert search(100) == best
    for limit in (1, 2, 3, 4, 6, 7, 8):
        assert search(limit) == best[:limit], limit
    assert search(2, (w3, w1, w2)) == best[:2]  # keyword order does not matter
    two_w4 = [one_b, three_b, three_a, two_a, three_c, only_w4]
    assert search(100, (w4, w2)) == two_w4
    assert search(3, (w2, w4)) == two_w4[:3]


# -- 9. the CLIs page through a pipe ---------------------------------------------------

def table_blocks(output: str) -> list[list[str]]:
    """The output split at each table header ("ID ..."): the lines after each header."""
    blocks: list[list[str]] = []
    for line in output.splitlines():
        if line.split()[:2] == ["ID", "Name"]:
            blocks.append([])
        elif blocks:
            blocks[-1].append(line)
    return blocks


def test_seller_cli_lists_a_page_at_a_time(market):
    name = unique_name("clis")
    seller = market.seller()
    seller.register(name)
    ids = [listing(seller, name=f"cli{i}") for i in range(102)]
    run = cli("seller_client.py", market.seller_server.address[1],
              f"login {name} pw", "list", "list more", "list more")
    assert run.returncode == 1, run.stderr
    assert run.stderr == "line 4: Nothing more to show; 'list' shows the first page.\n"
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"Logged in as {name} ")
    more = "There is more: type 'list more'."
    assert lines.count(more) == 1
    first, second = table_blocks(run.stdout)
    assert first[-1] == more
    assert [int(line.split()[0]) for line in first[:-1]] == ids[:100]
    assert [int(line.split()[0]) for line in second] == ids[100:]

    # 'list' starts again at the first page; 'list more' before any 'list' has nothing.
    run = cli("seller_client.py", market.seller_server.address[1],
              f"login {name} pw", "list more", "list", "list more", "list")
    assert run.returncode == 1
    assert run.stderr == "line 2: Nothing more to show; 'list' shows the first page.\n"
    blocks = table_blocks(run.stdout)
    assert [len(block) for block in blocks] == [101, 2, 101]
    assert [line.split()[0] for line in blocks[2][:-1]] == [str(i) for i in ids[:100]]


PURCHASE_HEADER = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC, \$[\d,]+\.\d\d, card ending 1111:$")


def test_buyer_cli_shows_purchases_a_page_at_a_time(market, big):
    run = cli("buyer_client.py", market.buyer_server.address[1],
              f"login {big.buyer_name} pw", "purchases", "purchases more", "purchases more")
    assert run.returncode == 1, run.stderr
    assert run.stderr == "line 4: Nothing more to show; 'purchases' shows the first page.\n"
    more = "There is more: type 'purchases more'."
    lines = run.stdout.splitlines()
    assert lines.count(more) == 1
    cut = lines.index(more)
    first = sum(bool(PURCHASE_HEADER.match(line)) for line in lines[:cut])
    second = sum(bool(PURCHASE_HEADER.match(line)) for line in lines[cut:])
    assert 1 <= first < 3 and first + second == 3, (first, second)
    assert lines[cut - 1] == lines[-1] == f"Units bought in all: {3 * CART_MAX}."
    rows = [line for line in lines if line.startswith("  ") and "€" in line]
    assert len(rows) == 3 * CART_MAX


# -- at the spec's scale (MARKET_BIG_TESTS=1) ---------------------------------------------

@pytest.mark.skipif(not BIG_TESTS, reason="set MARKET_BIG_TESTS=1 for the spec-scale run")
def test_a_seller_of_12000_items_pages_through_all_at_flat_cost(market):
    seller = market.seller()
    seller.register(unique_name("huge"))
    small = market.seller()
    small.register(unique_name("tiny"))
    listing(small, name="one")

    def page_ms(api: Api, **args) -> float:
        times = []
        for _ in range(30):
            start = time.perf_counter()
            api("DisplayItemsForSale", **args)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    empty_ms = page_ms(small, limit=20)
    ids = [listing(seller, name=f"h{i:05d}" + "€" * 26) for i in range(12_000)]
    pages = all_pages(seller, "DisplayItemsForSale", "items", limit=500)
    assert [len(page["items"]) for page in pages] == [500] * 24
    assert ids_of([item for page in pages for item in page["items"]]) == ids
    deep = pages[-2]["next"]
    full_ms = page_ms(seller, limit=20, after=deep)
    first_ms = page_ms(seller, limit=20)
    assert max(full_ms, first_ms) <= 2 * empty_ms + 1.0, (empty_ms, first_ms, full_ms)
