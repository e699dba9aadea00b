"""Security: passwords, card numbers, session tokens, isolation between users,
the default bind address, replies free of internals, and resource limits
(a connection cap, idle and read timeouts) against denial of service."""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import time

import pytest
from helpers.market import ROOT, keyed, start_market, wait_until
from helpers.wire import Wire

import customer_db
from buyer_server import BuyerFrontend
from market.customer.accounts import Role
from market.net.internal import InternalOp
from market.net.service import Op, Service
from market.ops.launch import ServiceProcess
from protocol import ApiError

PASSWORD = "Zq9-s3cret-Pa55"
CARD_NUMBER = "4539148803436467"  # passes the Luhn check
REJECTED_CARD = "4539148803436468"  # fails it
CARD = {"card_name": "Sec Tester", "card_number": CARD_NUMBER, "expiry": "12/99"}
SCRIPTS = ["product_db.py", "customer_db.py", "seller_server.py", "buyer_server.py"]


def written(tmp_path, pattern: str = "*") -> str:
    """The text of every file the services wrote (logs and data) matching ``pattern``."""
    return "\n".join(path.read_text(errors="replace")
                     for path in sorted(tmp_path.rglob(pattern)) if path.is_file())


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A market whose whole story (accounts, failures, a purchase) is on disk in ``path``."""
    path = tmp_path_factory.mktemp("logged")
    # Each service logs at DEBUG into path/<script>.log; the databases keep a data dir.
    market = start_market(data_dir=path, log_dir=path, env={"LOG_LEVEL": "DEBUG"})
    seller, buyer = market.seller(), market.buyer()
    seller.register("sec_seller", PASSWORD)
    buyer.register("sec_buyer", PASSWORD)
    assert seller.error("Login", username="sec_seller", password=PASSWORD + "x") == "auth_failed"
    assert buyer.error("CreateAccount", username="sec_buyer", password=PASSWORD) == "conflict"
    item_id = seller("RegisterItemForSale", name="safe", category=2, keywords=[],
                     condition="new", price=12, quantity=5)["item_id"]
    buyer("AddItemToCart", item_id=item_id, quantity=1)
    assert buyer.error("MakePurchase", **{**CARD, "card_number": REJECTED_CARD}) == "conflict"
    assert buyer.error("MakePurchase", **{**CARD, "expiry": "13/99"}) == "conflict"
    purchases = [buyer("MakePurchase", **CARD)["purchase"], buyer("GetBuyerPurchases")]
    tokens = [seller.session, buyer.session]
    market.stop()  # logs flushed, files closed
    return {"path": path, "purchases": purchases, "tokens": tokens}


# -- passwords ----------------------------------------------------------------

class InProcess:
    """A frontend's database client that hands each request line to a ``Service`` in this
    process, and keeps the lines it was given."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.sent: list[str] = []

    def call(self, op: str | InternalOp, args: dict | None = None, session: str | None = None,
             read: bool = False) -> dict:
        name = op.name if isinstance(op, InternalOp) else op
        line = json.dumps({"op": name, "args": args or {}, "session": session})
        self.sent.append(line)
        reply = json.loads(self.service.respond(line.encode() + b"\n"))
        if not reply["ok"]:
            raise ApiError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]


def test_passwords_are_salted_scrypt_hashes():
    """The one look inside: two accounts with one password hold different salts and
    hashes, each scrypt of the password with its salt, made by the frontend; the customer
    database never sees the password, and takes nothing but the exact hash."""
    db = customer_db.CustomerDB()
    customer = InProcess(db)
    frontend = BuyerFrontend(customer, None)  # the default hasher, as deployed
    for name in ("twin1", "twin2"):
        line = json.dumps({"op": "CreateAccount", "args": {"username": name,
                                                          "password": PASSWORD}})
        assert json.loads(frontend.respond(line.encode() + b"\n"))["ok"]
    twins = [db.data.accounts.named(Role.BUYER, name) for name in ("twin1", "twin2")]
    assert twins[0].salt != twins[1].salt and len(twins[0].salt) >= 16
    assert twins[0].password_hash != twins[1].password_hash
    for account in twins:
        assert account.cost == frontend.hasher.cost
        assert account.password_hash == hashlib.scrypt(
            PASSWORD.encode(), salt=account.salt, n=2 ** account.cost, r=8, p=1, dklen=32,
            maxmem=256 << 20)
        assert PASSWORD not in repr(vars(account))
    for password, ok in ((PASSWORD, True), (PASSWORD + "x", False)):
        line = json.dumps({"op": "Login", "args": {"username": "twin1", "password": password}})
        assert json.loads(frontend.respond(line.encode() + b"\n"))["ok"] is ok
    assert customer.sent and not [line for line in customer.sent if PASSWORD in line]
    stored = twins[0].password_hash
    assert db.data.accounts.verify(Role.BUYER, "twin1", stored) is twins[0]
    for wrong in (stored[:-1] + bytes([stored[-1] ^ 1]), bytes(32), twins[1].password_hash,
                  stored[:16], stored + b"\0"):
        with pytest.raises(ApiError) as refused:
            db.data.accounts.verify(Role.BUYER, "twin1", wrong)
        assert refused.value.code == "auth_failed"


def test_wrong_password_and_unknown_name_look_alike(market):
    api = market.buyer()
    api("CreateAccount", username="alike", password=PASSWORD)
    replies = []
    for username, password in [("alike", PASSWORD + "!"), ("nobody-at-all", PASSWORD)]:
        with pytest.raises(ApiError) as failure:
            api.login(username, password)
        replies.append((failure.value.code, failure.value.message))
    assert replies[0] == replies[1] and replies[0][0] == "auth_failed"
    assert api.login("alike", PASSWORD)["session"]


def test_password_and_card_number_never_logged_or_stored(logged):
    logs, everything = written(logged["path"], "*.log"), written(logged["path"])
    assert "DEBUG" in logs and "Login ok" in logs, "the services logged nothing: test is blind"
    assert "sec_buyer" in written(logged["path"] / "customer"), "no data files: test is blind"
    assert [s for s in (PASSWORD, CARD_NUMBER, REJECTED_CARD) if s in everything] == []
    # The customer database's journal holds session tokens; no log may.
    assert [token for token in logged["tokens"] if token in logs] == []


def test_purchases_keep_only_the_last_four_digits(logged):
    purchase, history = logged["purchases"]
    assert purchase["card_last4"] == CARD_NUMBER[-4:]
    for reply in (purchase, history):
        text = json.dumps(reply)
        assert CARD_NUMBER not in text and CARD_NUMBER[:12] not in text
        assert "card_number" not in text and "expiry" not in text
    schema = customer_db.CustomerDB().ops["CommitPurchase"].schema
    assert "card_last4" in schema and not {"card_number", "expiry", "card_name"} & schema.keys()


# -- sessions -----------------------------------------------------------------

def test_session_tokens_are_long_random_and_role_scoped(market):
    seller, buyer = market.seller(), market.buyer()
    seller("CreateAccount", username="tok_seller", password="pw")
    buyer("CreateAccount", username="tok_buyer", password="pw")
    tokens = [buyer.login("tok_buyer")["session"] for _ in range(20)]
    assert len(set(tokens)) == len(tokens)
    # Random throughout, not a counter or a clock: no two share their first or last 8
    # characters (a chance of about 1 in 10 million for random ones).
    assert len({t[:8] for t in tokens}) == len({t[-8:] for t in tokens}) == len(tokens)
    for token in tokens:
        alphabet = 16 if all(c in "0123456789abcdef" for c in token) else 64
        assert len(token) * math.log2(alphabet) >= 128, token

    seller.login("tok_seller")
    seller_token, buyer_token = seller.session, buyer.session
    seller.session, buyer.session = buyer_token, seller_token
    assert seller.error("DisplayItemsForSale") == "invalid_session"
    assert seller.error("GetSellerRating") == "invalid_session"
    assert buyer.error("DisplayCart") == "invalid_session"
    assert buyer.error("GetBuyerPurchases") == "invalid_session"


def test_one_users_token_never_reaches_another_users_data(market):
    seller_a, seller_b = market.seller(), market.seller()
    seller_a.register("iso_seller_a")
    seller_b.register("iso_seller_b")
    item_b = seller_b("RegisterItemForSale", name="b's", category=8, keywords=[],
                      condition="new", price=3, quantity=4)["item_id"]
    items_b = seller_b("DisplayItemsForSale")
    assert seller_a("DisplayItemsForSale")["items"] == []
    assert seller_a.error("ChangeItemPrice", item_id=item_b, price=0.01) == "forbidden"
    assert seller_a.error("UpdateUnitsForSale", item_id=item_b, quantity=4) == "forbidden"
    assert seller_b("DisplayItemsForSale") == items_b

    buyer_a, buyer_b = market.buyer(), market.buyer()
    buyer_a.register("iso_buyer_a")
    buyer_b.register("iso_buyer_b")
    buyer_b("AddItemToCart", item_id=item_b, quantity=1)
    buyer_b("MakePurchase", card_name="B", card_number="4111111111111111", expiry="12/99")
    buyer_b("AddItemToCart", item_id=item_b, quantity=2)
    buyer_b("SaveCart")
    assert buyer_a("DisplayCart")["cart"]["lines"] == []
    assert buyer_a("GetBuyerPurchases")["purchases"] == []
    assert buyer_a.error("ProvideFeedback", item_id=item_b, vote="down") == "conflict"
    buyer_a("ClearCart")
    assert [line["quantity"] for line in buyer_b("DisplayCart")["cart"]["lines"]] == [2]
    assert len(buyer_b("GetBuyerPurchases")["purchases"]) == 1


# -- binding and replies --------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_default_bind_is_loopback(script):
    proc = ServiceProcess(script, *(["--product-db", "127.0.0.1:1", "--customer-db", "127.0.0.1:1"]
                          if "server" in script else []))
    proc.env = {k: v for k, v in proc.env.items() if not k.endswith("_HOST")}
    help_text = subprocess.run([sys.executable, str(ROOT / script), "--help"], env=proc.env,
                               capture_output=True, text=True, timeout=10).stdout
    assert "default 127.0.0.1" in " ".join(help_text.split())
    try:
        assert proc.start().address[0] == "127.0.0.1"
    finally:
        proc.stop()


def test_an_internal_error_reply_carries_no_detail():
    class Broken(Service):
        name = "broken"

        def __init__(self) -> None:
            super().__init__()
            self.ops = {"Boom": Op(self.boom, needs_session=False)}

        def boom(self, request) -> dict:
            raise KeyError("secret-detail /etc/passwd")

    reply = Broken().respond(b'{"op": "Boom", "id": 5}\n')
    assert json.loads(reply) == {"ok": False, "id": 5, "error": {
        "code": "internal", "message": "The server hit an internal error."}}


# -- resource limits ------------------------------------------------------------

GET_ITEM = b'{"op": "GetItem", "args": {"item_id": 1}, "id": 1}\n'


def test_connections_over_the_cap_get_unavailable_and_are_closed():
    db = ServiceProcess("product_db.py", env={"MAX_CONNECTIONS": "5"}).start()
    try:
        admitted = [Wire(db.address) for _ in range(5)]
        assert all(conn.send(GET_ITEM)["error"]["code"] == "not_found" for conn in admitted)
        extra = Wire(db.address)
        reply = json.loads(extra.read_line())
        assert reply["ok"] is False and reply["error"]["code"] == "unavailable"
        assert extra.is_closed()
        extra.close()
        admitted.pop().close()
        later = []

        def served() -> bool:  # once the server has seen the close, a slot is free
            later.append(Wire(db.address))
            return later[-1].send(GET_ITEM).get("error", {}).get("code") == "not_found"

        assert wait_until(served, timeout=5)
        for conn in admitted + later:
            conn.close()
    finally:
        db.stop()


def test_slow_senders_are_cut_off_by_the_read_timeout():
    db = ServiceProcess("product_db.py", "--read-timeout", "1").start()
    try:
        whole = b'{"op": "GetItem", "args": {"item_id": 1}, "id": 1}\n'
        split = Wire(db.address)
        split.write(whole[:20])
        time.sleep(0.4)
        assert split.send(whole[20:] + whole[:30])["error"]["code"] == "not_found"
        time.sleep(0.4)  # the pipelined half line has its own full second
        assert split.send(whole[30:])["error"]["code"] == "not_found"
        split.close()

        trickle = Wire(db.address)
        start = time.monotonic()
        with pytest.raises(OSError):
            for byte in whole * 10:  # a byte every 0.1 s: 10 s if never cut off
                trickle.sock.send(bytes([byte]))
                time.sleep(0.1)
        assert time.monotonic() - start < 3
        trickle.close()
    finally:
        db.stop()


def test_idle_connections_are_closed_after_the_idle_timeout():
    db = ServiceProcess("product_db.py", "--idle-timeout", "1", "--read-timeout", "5").start()
    try:
        busy, idle = Wire(db.address), Wire(db.address)
        start = time.monotonic()
        while time.monotonic() - start < 2:  # busy stays open past the idle limit
            assert busy.send(GET_ITEM)["error"]["code"] == "not_found"
            time.sleep(0.3)
        assert idle.is_closed() and time.monotonic() - start < 3
        idle.close()
        busy.close()
    finally:
        db.stop()


def test_a_client_that_never_reads_is_dropped():
    """Its unread replies fill the socket buffers; the blocked send times out, freeing the slot."""
    db = ServiceProcess("product_db.py", "--read-timeout", "1", "--max-connections", "1").start()
    try:
        seller = Wire(db.address)
        item_ids = []
        for n in range(100):  # so that each short Search gets a long reply
            item = {"seller_id": 1, "name": f"{n:032d}", "category": 1, "condition": "new",
                    "keywords": ["kw1", "kw2", "kw3", "kw4", "kw5"], "price": 1, "quantity": 1,
                    **keyed()}
            reply = seller.send(json.dumps({"op": "RegisterItem", "args": item}).encode() + b"\n")
            assert reply["ok"], reply
            item_ids.append(reply["result"]["item_id"])
        seller.close()
        get_item = json.dumps({"op": "GetItem", "args": {"item_id": item_ids[0]}}).encode() + b"\n"

        def served() -> bool:
            conn = Wire(db.address)
            ok = conn.send(get_item).get("ok") is True
            conn.close()
            return ok

        assert wait_until(served, timeout=5)
        hog = Wire(db.address, timeout=2)
        search = b'{"op": "Search", "args": {"category": 1, "keywords": [], "limit": 500}}\n'
        try:
            for _ in range(10_000):  # until the server stops reading (or drops us)
                hog.write(search * 100)
        except OSError:
            pass
        assert wait_until(served, timeout=8)
        hog.close()
    finally:
        db.stop()


def test_five_hundred_idle_connections_do_not_stop_a_client(market):
    idle = [Wire(market.buyer_server.address) for _ in range(500)]
    idle += [Wire(market.product_db.address) for _ in range(100)]
    try:
        for conn in idle[::3]:
            conn.write(b'{"op": "Ping"')  # half a line each
        buyer = market.buyer()
        start = time.monotonic()
        buyer.register("crowded")
        assert buyer("SearchItemsForSale", category=1)["items"] is not None
        assert time.monotonic() - start < 5
        # An idle one still works.
        assert idle[1].send(GET_ITEM)["error"]["code"] == "invalid_session"
    finally:
        for conn in idle:
            conn.close()
