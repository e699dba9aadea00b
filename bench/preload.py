"""Markets of a chosen size, and single ops timed on them (contract section 8).

This module owns the two parts of the data-size benchmark that touch the
services: ``build_market`` fills fresh services to a ``Shape`` (items in all,
how many of them one big seller owns, how many purchases one big buyer has)
through the frontends, over real sockets, many connections at once, outside
any clock; ``probe`` then times each op of ``PROBES`` from one connection per
frontend, one request at a time, in round robin, so every op meets the same
moments of the machine. A latency is from sending the request to receiving
the whole reply line (the client's own JSON work is left out).
"""
from __future__ import annotations

import random
import time
from array import array
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.loadgen import CATEGORIES, KEYWORD_CHOICES, OP_TIMEOUT, PASSWORD
from market.config import PAGE_LIMIT_DEFAULT, SAMPLE_CARD
from market.net.client import Client, Connection
from market.paging import page_args
from protocol import decode, encode, envelope, result_of


@dataclass(frozen=True)
class Shape:
    """How big a market to build."""

    name: str
    items: int  # in the whole market
    seller_items: int  # of those, the big seller's
    purchases: int  # the big buyer's


# Nearly empty, yet every probe gets a full reply: two full pages of each list
# and more than 20 search matches, with and without keywords.
SMALL = Shape("small", 500, 200, 200)
LARGE = Shape("large", 50_000, 12_000, 3_000)  # the contract's section 8
QUICK_LARGE = Shape("large", 2_000, 500, 250)

OTHER_SELLERS = 4  # accounts that own the items the big seller does not
BUYER_SESSIONS = 8  # logins of the big buyer, each buying in its own thread (own cart)
REGISTER_THREADS = 16  # connections listing items at once
LINES_PER_PURCHASE = 2  # distinct items per purchase, one unit each
SEARCH_CATEGORY = 3  # items take the categories in turn: a tenth of the market is here
SEARCH_WORDS = ["lamp", "desk", "chair"]  # each item has 3 of the 10 KEYWORD_CHOICES: ~70 % match
SEARCH_LIMIT_SENT = 20  # the limit each timed search asks for

PROBES = ["DisplayItemsForSale first page", "DisplayItemsForSale later page",
          "GetBuyerPurchases first page", "GetBuyerPurchases later page",
          "SearchItemsForSale", "SearchItemsForSale keywords", "GetItem",
          "AddItemToCart", "DisplayCart", "RemoveItemFromCart"]


@dataclass
class Market:
    """What ``build_market`` made: the sessions to probe with and the items there are."""

    shape: Shape
    seller_session: str  # the big seller's
    buyer_session: str  # the big buyer's, its cart empty
    item_ids: list[int]
    seconds: dict[str, float]  # how long each step of the build took


def market_item(rng: random.Random, number: int) -> dict:
    """Item ``number`` of a built market: categories in turn, 3 keywords, units to spare."""
    return {"name": f"item {number}", "category": number % CATEGORIES,
            "keywords": rng.sample(KEYWORD_CHOICES, 3), "condition": rng.choice(("new", "used")),
            "price": rng.randint(100, 10_000) / 100, "quantity": rng.randint(50, 100)}


def sign_up(client: Client, names: list[str]) -> list[str]:
    """Create each named account once, then log in once per entry of ``names``, all at
    once (the frontend queues the hashing); returns the sessions in that order."""
    credentials = [{"username": name, "password": PASSWORD} for name in names]
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda name: client.call("CreateAccount", {
            "username": name, "password": PASSWORD}), sorted(set(names))))
        return [login["session"] for login in pool.map(
            lambda args: client.call("Login", args), credentials)]


def build_market(addresses: dict[str, tuple[str, int]], shape: Shape, seed: str) -> Market:
    """Fill fresh services to ``shape`` through the frontends; raises on any failure."""
    rng = random.Random(seed)
    sellers = Client(addresses["seller"], OP_TIMEOUT, pool_size=REGISTER_THREADS)
    buyers = Client(addresses["buyer"], OP_TIMEOUT, pool_size=BUYER_SESSIONS)
    seconds: dict[str, float] = {}
    try:
        started = time.monotonic()
        seller_sessions = sign_up(sellers, [f"seller-{n}" for n in range(1 + OTHER_SELLERS)])
        buyer_sessions = sign_up(buyers, ["buyer"] * BUYER_SESSIONS)
        seconds["accounts_s"] = time.monotonic() - started

        started = time.monotonic()
        owners = [0] * shape.seller_items + [1 + n % OTHER_SELLERS
                                             for n in range(shape.items - shape.seller_items)]
        rng.shuffle(owners)  # the big seller's items spread over the whole id range
        items = [market_item(rng, number) for number in range(shape.items)]
        with ThreadPoolExecutor(REGISTER_THREADS) as pool:
            item_ids = list(pool.map(lambda n: sellers.call(
                "RegisterItemForSale", items[n], seller_sessions[owners[n]])["item_id"],
                range(shape.items)))
        seconds["items_s"] = time.monotonic() - started

        started = time.monotonic()
        shares = [shape.purchases // BUYER_SESSIONS + (n < shape.purchases % BUYER_SESSIONS)
                  for n in range(BUYER_SESSIONS)]
        with ThreadPoolExecutor(BUYER_SESSIONS) as pool:
            list(pool.map(lambda n: buy(buyers, buyer_sessions[n], shares[n], item_ids,
                                        random.Random(f"{seed}-buyer-{n}")),
                          range(BUYER_SESSIONS)))
        seconds["purchases_s"] = time.monotonic() - started
    finally:
        sellers.close()
        buyers.close()
    return Market(shape, seller_sessions[0], buyer_sessions[0], item_ids, seconds)


def buy(buyers: Client, session: str, purchases: int, item_ids: list[int],
        rng: random.Random) -> None:
    """Make ``purchases`` purchases on one session, each of ``LINES_PER_PURCHASE`` items."""
    for _ in range(purchases):
        for item_id in rng.sample(item_ids, LINES_PER_PURCHASE):
            buyers.call("AddItemToCart", {"item_id": item_id, "quantity": 1}, session)
        buyers.call("MakePurchase", SAMPLE_CARD, session)


def call(conn: Connection, op: str, args: dict, session: str) -> dict:
    """One untimed request; its result, or its error raised as ``ApiError``."""
    return result_of(decode(conn.exchange(encode(envelope(op, args, session))), exact=False))


def later_page(conn: Connection, op: str, session: str, key: str, expected: int) -> str:
    """Page through a whole list, checking it shows ``expected`` entries; returns the
    ``after`` of its last full page (a page far from the start on a big list)."""
    after: str | None = None
    last_full = None
    seen = 0
    while True:
        result = call(conn, op, page_args(PAGE_LIMIT_DEFAULT, after), session)
        if after is not None and len(result[key]) == PAGE_LIMIT_DEFAULT:
            last_full = after
        seen += len(result[key])
        after = result["next"]
        if after is None:
            break
    if seen != expected or last_full is None:
        raise RuntimeError(f"{op} listed {seen} {key} in pages of {PAGE_LIMIT_DEFAULT}, "
                           f"expected {expected}")
    return last_full


def entries(result: dict) -> int:
    """How many entries a reply shows: items, purchases or cart lines (1 for one item)."""
    for key in ("items", "purchases"):
        if key in result:
            return len(result[key])
    return len(result["cart"]["lines"]) if "cart" in result else 1


class Timing:
    """One probe's outcomes: ok latencies (seconds), failures by code, the reply's size."""

    def __init__(self) -> None:
        self.latencies = array("d")
        self.failures: Counter = Counter()
        self.reply_bytes = 0
        self.entries = 0


def probe(addresses: dict[str, tuple[str, int]], market: Market, rounds: int,
          seed: str) -> dict[str, Timing]:
    """Time every op of ``PROBES`` ``rounds`` times, after one uncounted warm-up round."""
    seller = Connection(addresses["seller"], OP_TIMEOUT)
    buyer = Connection(addresses["buyer"], OP_TIMEOUT)
    try:
        items_after = later_page(seller, "DisplayItemsForSale", market.seller_session, "items",
                                 market.shape.seller_items)
        purchases_after = later_page(buyer, "GetBuyerPurchases", market.buyer_session,
                                     "purchases", market.shape.purchases)
        rng = random.Random(seed)
        timings = {label: Timing() for label in PROBES}
        search = {"category": SEARCH_CATEGORY, "limit": SEARCH_LIMIT_SENT}
        for number in range(rounds + 1):
            looked_at, carted = rng.sample(market.item_ids, 2)
            cart_line = {"item_id": carted, "quantity": 1}
            steps = [
                (seller, market.seller_session, "DisplayItemsForSale",
                 {"limit": PAGE_LIMIT_DEFAULT}),
                (seller, market.seller_session, "DisplayItemsForSale",
                 {"limit": PAGE_LIMIT_DEFAULT, "after": items_after}),
                (buyer, market.buyer_session, "GetBuyerPurchases", {"limit": PAGE_LIMIT_DEFAULT}),
                (buyer, market.buyer_session, "GetBuyerPurchases",
                 {"limit": PAGE_LIMIT_DEFAULT, "after": purchases_after}),
                (buyer, market.buyer_session, "SearchItemsForSale", search),
                (buyer, market.buyer_session, "SearchItemsForSale",
                 {**search, "keywords": SEARCH_WORDS}),
                (buyer, market.buyer_session, "GetItem", {"item_id": looked_at}),
                (buyer, market.buyer_session, "AddItemToCart", cart_line),
                (buyer, market.buyer_session, "DisplayCart", {}),
                (buyer, market.buyer_session, "RemoveItemFromCart", cart_line)]
            for label, (conn, session, op, args) in zip(PROBES, steps):
                payload = encode(envelope(op, args, session))
                started = time.perf_counter()
                line = conn.exchange(payload)
                elapsed = time.perf_counter() - started
                if number == 0:
                    continue
                reply = decode(line, exact=False)
                timing = timings[label]
                if not reply.get("ok"):
                    timing.failures[(reply.get("error") or {}).get("code", "?")] += 1
                    continue
                if not timing.latencies:
                    timing.reply_bytes, timing.entries = len(line), entries(reply["result"])
                timing.latencies.append(elapsed)
    finally:
        seller.close()
        buyer.close()
    return timings
