"""The CLIs' keys (contract §11, "The CLIs never guess"): every write goes with a fresh
idempotency_key, and a write whose reply is lost is resent with the same key, to the same
frontend once and then to the next, so that it happens once; "it may or may not have
happened" only when no frontend answered. Through pipes, against real services, with a
proxy in front of a frontend that lets it act and loses its reply."""
from __future__ import annotations

import re

import pytest
from helpers.cli import Conversation, cli, free_port
from helpers.market import listing, stall, start_market, units
from helpers.proxy import ReplyDropper

from market.ops.launch import ServiceProcess

KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
READS = {"Hello", "Login", "Logout", "SearchItemsForSale", "GetItem", "DisplayCart",
         "GetBuyerPurchases", "GetSellerRating", "DisplayItemsForSale"}


class KillingDropper(ReplyDropper):
    """A ``ReplyDropper`` that may kill -9 its frontend the moment it drops a reply (the
    frontend acted, then died)."""

    def __init__(self, upstream: tuple[str, int], kill: ServiceProcess | None = None) -> None:
        self.kill = kill
        super().__init__(upstream)

    def _take_drop(self, op: str) -> bool:
        dropping = super()._take_drop(op)
        if dropping and self.kill is not None:
            self.kill.kill()
        return dropping

    def keys(self, op: str) -> list[str | None]:
        return [request.get("idempotency_key") for request in self.requests
                if request["op"] == op]


@pytest.fixture(scope="module")
def market(two_frontends):
    """This module's market has a second buyer and a second seller frontend (``buyer_b``,
    ``seller_b``); it overrides conftest's ``market`` so that the ``buyer`` fixture is a
    buyer of it too."""
    return two_frontends


@pytest.fixture
def proxies():
    """Proxies made by a test (``proxies.add(...)``), closed after it."""
    made: list[KillingDropper] = []

    class Made:
        @staticmethod
        def add(upstream, kill=None) -> KillingDropper:
            made.append(KillingDropper(upstream, kill))
            return made[-1]

    yield Made
    for proxy in made:
        proxy.close()


def run(script: str, frontends: list[str], *lines: str):
    variable = "BUYER_SERVERS" if script.startswith("buyer") else "SELLER_SERVERS"
    return cli(script, None, *lines, env={variable: ",".join(frontends)})


def moved(first: str, then: str) -> str:
    return f"{first} stopped answering; now using {then}."


UNSAVED = "Note: the cart's unsaved changes are lost at logout (save keeps them).\n"


# -- every write has its own key ----------------------------------------------------------

def test_every_write_carries_a_key_of_its_own_and_nothing_else_does(market, proxies,
                                                                     unique):
    seller_proxy = proxies.add(market.seller_server.address)
    buyer_proxy = proxies.add(market.buyer_server.address)
    word, name = unique("k")[:8], unique("sal")
    result = run("seller_client.py", [seller_proxy.addr], f"signup {name} pw",
                 f"register lamp 3 new 5 10 {word}", "list", "rating")
    assert result.returncode == 0, result
    item = int(re.search(r"Listed as item (\d+)", result.stdout)[1])
    result = run("seller_client.py", [seller_proxy.addr], f"login {name} pw",
                 f"price {item} 4", f"remove {item} 1")
    assert result.returncode == 0, result
    result = run("buyer_client.py", [buyer_proxy.addr], f"signup {unique('bev')} pw",
                 f"search 3 {word}", f"item {item}", f"add {item} 2", f"remove {item} 1",
                 "cart", "save", "clear", f"add {item} 1",
                 "buy Bev 4111111111111111 12/99", "purchases", f"rate {item} up",
                 "rating 1", "logout")
    assert result.returncode == 0, result
    keys = []
    for proxy in (seller_proxy, buyer_proxy):
        for request in proxy.requests:
            key = request.get("idempotency_key")
            if request["op"] in READS:
                assert key is None, request
            else:
                assert key is not None and KEY.fullmatch(key), request
                keys.append(key)
    assert len(keys) == 12  # 2 signups; register, price, remove; the buyer's 7 changes
    assert len(set(keys)) == len(keys)  # one per command


# -- a lost reply: the same key, the same frontend once, then the next -----------------------

def test_a_lost_reply_is_resent_with_its_key_and_the_write_happens_once(market, proxies,
                                                                         unique):
    item = listing(seller_of(market, unique), price=5)
    first = proxies.add(market.buyer_server.address)
    second = proxies.add(market.buyer_b.address)
    first.drop("AddItemToCart", times=2)  # the first and its resend to the same frontend
    result = run("buyer_client.py", [first.addr, second.addr], f"signup {unique('ann')} pw",
                 f"add {item} 2", "cart")
    assert result.returncode == 0, result
    assert result.stderr == f"line 2: {moved(first.addr, second.addr)}\n" + UNSAVED
    [key] = set(first.keys("AddItemToCart"))
    assert first.keys("AddItemToCart") == [key, key] and second.keys("AddItemToCart") == [key]
    assert result.stdout.count("Total: $10.00") == 2, result.stdout  # 2 units, not 4 or 6


@pytest.mark.parametrize("side", ["buyer", "seller"])
def test_a_frontend_killed_after_a_write_the_next_one_tells_its_outcome(market, proxies, buyer,
                                                                        unique, side):
    """kill -9 the frontend in use the moment it has applied a write: the CLI resends the
    write, with its key, to the other frontend, and it happens once."""
    seller = seller_of(market, unique)
    item = listing(seller, price=5, quantity=10)
    victim = market.another_frontend(f"{side}_server.py")
    try:
        first = proxies.add(victim.address, kill=victim)
        other = market.buyer_b if side == "buyer" else market.seller_b
        second = proxies.add(other.address)
        if side == "buyer":
            first.drop("AddItemToCart")
            result = run("buyer_client.py", [first.addr, second.addr],
                         f"signup {unique('ben')} pw", f"add {item} 2", "cart")
            assert result.stdout.count("Total: $10.00") == 2, result.stdout  # not $20.00
            op = "AddItemToCart"
        else:
            first.drop("UpdateUnitsForSale")
            account = seller.username
            result = run("seller_client.py", [first.addr, second.addr],
                         f"login {account} pw", f"remove {item} 3")
            assert units(buyer, item) == 7  # removed once, not twice
            op = "UpdateUnitsForSale"
        assert result.returncode == 0, result
        note = UNSAVED if side == "buyer" else ""
        assert result.stderr == f"line 2: {moved(first.addr, second.addr)}\n" + note
        [key] = set(first.keys(op))
        assert second.keys(op) == [key]
    finally:
        victim.stop()


def test_may_or_may_not_only_when_no_frontend_answers(market, proxies, unique):
    item = listing(seller_of(market, unique), price=5)
    only = proxies.add(market.buyer_server.address)
    only.drop("AddItemToCart", times=2)
    result = run("buyer_client.py", [only.addr], f"signup {unique('cid')} pw",
                 f"add {item} 2", f"remove {item} 1")
    assert result.returncode == 1
    assert result.stderr == (f"line 2: No answer from the buyer frontend at {only.addr}, so "
                             "it may or may not have happened; check with 'cart' before "
                             "trying it again.\n" + UNSAVED)
    [key] = set(only.keys("AddItemToCart"))
    assert only.keys("AddItemToCart") == [key, key]
    # The CLI does not guess the cart either: it looks again before the next change, so
    # 'remove' finds the item; and 2 - 1 units are left: the add was made once.
    assert result.stdout.endswith("Total: $5.00\n"), result.stdout


def test_a_frontend_cut_off_from_a_database_is_left_for_the_next_with_the_same_key(
        market, proxies, unique):
    """A frontend that cannot reach a database answers a keyed write deadline_exceeded (this
    try changed nothing, but an earlier send with the key might have): the CLI asks it once
    more, then the next one, with the same key, says so in one line, and stays with it."""
    item = listing(seller_of(market, unique), price=5)
    cut_off = market.another_frontend("buyer_server.py",
                                      "--product-db", f"127.0.0.1:{free_port()}")
    try:
        first = proxies.add(cut_off.address)
        second = proxies.add(market.buyer_b.address)
        result = run("buyer_client.py", [first.addr, second.addr],
                     f"signup {unique('dot')} pw", f"add {item} 2", "cart")
        assert result.returncode == 0, result
        assert result.stderr == (f"line 1: {first.addr} cannot reach its databases; now "
                                 f"using {second.addr}.\n" + UNSAVED)
        [key] = set(first.keys("CreateAccount"))
        assert first.keys("CreateAccount") == [key, key]
        assert second.keys("CreateAccount") == [key]
        assert first.keys("AddItemToCart") == [] and len(second.keys("AddItemToCart")) == 1
        assert result.stdout.count("Total: $10.00") == 2, result.stdout
    finally:
        cut_off.stop()


def seller_of(market, unique):
    """A fresh seller, logged in through the API; ``username`` set."""
    seller = market.seller()
    seller.username = unique("sid")
    seller.register(seller.username)
    return seller


def test_a_change_the_frontend_could_not_confirm_is_said_so_and_made_once(unique):
    """The product database stalls (SIGSTOP) after the cart was read: the cart change is
    made, the frontend cannot show the cart and answers deadline_exceeded, the CLI resends
    with the key, then says it could not be confirmed; the change was made once."""
    market = start_market(db_timeout=0.5)
    try:
        item = listing(seller_of(market, unique), price=5)
        buyer = Conversation.piped("buyer_client.py", market.buyer_server.address[1])
        try:
            buyer.say(f"signup {unique('eve')} pw", "Logged in")
            buyer.say(f"add {item} 5", "Total: $25.00")
            resume = stall(market, market.product_db)
            try:
                out = buyer.say(f"remove {item} 2", "before trying it again.")
            finally:
                resume()
            assert "line 3: The marketplace could not confirm whether it took effect" in out
            assert "check with 'cart'" in out
            buyer.say("cart", "Total: $15.00")  # 5 - 2, once: not $5.00
            buyer.finish()
            assert b"Traceback" not in buyer.seen
        finally:
            buyer.kill()
    finally:
        market.stop()
