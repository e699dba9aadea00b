"""The wire format of spec section 1, spoken over raw sockets to every service.

Nothing here uses ``protocol.py``: requests are bytes written by hand from the
spec, so these tests prove the wire format, not our own client.
"""
from __future__ import annotations

import json
import threading

import pytest
from helpers.wire import Wire

MIB = 1 << 20  # the spec's line limit, in bytes of JSON (the newline not counted)


@pytest.fixture
def raw_to():
    """raw_to(address) -> a ``Wire`` connection, closed after the test."""
    opened = []

    def open_raw(address):
        opened.append(Wire(address))
        return opened[-1]

    yield open_raw
    for conn in opened:
        conn.close()


def all_services(market):
    return {"seller": market.seller_server.address, "buyer": market.buyer_server.address,
            "product_db": market.product_db.address, "customer_db": market.customer_db.address}


SERVICES = ["seller", "buyer", "product_db", "customer_db"]
PROBE = b'{"op":"NoSuchOp","id":"probe"}\n'


def assert_error(reply: dict, code: str, request_id=None) -> None:
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    assert "Traceback" not in reply["error"]["message"]
    assert reply.get("id") == request_id


def assert_usable(conn: Wire) -> None:
    assert_error(conn.send(PROBE), "unknown_op", "probe")


BAD_LINES = {
    "invalid JSON": b'{"op": "Login", \n',
    "invalid UTF-8": b'{"op": "Login\xff\xfe"}\n',
    "lone surrogate bytes": b'{"op": "\xed\xa0\x80"}\n',
    "JSON array": b'[{"op": "Login"}]\n',
    "JSON number": b"42\n",
    "JSON string": b'"Login"\n',
    "JSON null": b"null\n",
    "empty line": b"\n",
    "NaN": b'{"op": "NoSuchOp", "id": NaN}\n',
    "Infinity": b'{"op": "NoSuchOp", "id": Infinity}\n',
    "number too big for a float": b'{"op": "NoSuchOp", "id": 1e400}\n',
    "op missing": b'{"args": {}}\n',
    "op not a string": b'{"op": 7}\n',
    "unknown top-level field": b'{"op": "Login", "colour": "red"}\n',
    "args not an object": b'{"op": "Login", "args": ["a", "b"]}\n',
    "args null": b'{"op": "Login", "args": null}\n',
    "deeply nested": b'{"op": "Login", "id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
}


@pytest.mark.parametrize("service", SERVICES)
def test_bad_lines_get_bad_request_and_the_connection_stays_usable(market, raw_to, service):
    conn = raw_to(all_services(market)[service])
    known_op = b"GetItem" if service == "product_db" else b"Login"
    for what, line in BAD_LINES.items():
        reply = conn.send(line.replace(b"Login", known_op))
        assert reply is not None, f"{what}: connection closed"
        assert_error(reply, "bad_request")
        assert_usable(conn)


@pytest.mark.parametrize("service", SERVICES)
def test_unknown_op_and_id_echo(market, raw_to, service):
    conn = raw_to(all_services(market)[service])
    for request_id in ["abc", 0, -17, 2.5, {"a": [1, None, True]}, [1, "x"], True, None, ""]:
        reply = conn.send_json({"op": "Teleport", "args": {}, "id": request_id})
        assert_error(reply, "unknown_op", request_id)
        assert set(reply) == {"ok", "error", "id"}
    # A frontend does not answer the other frontend's ops, nor the databases' own.
    other = {"seller": "SearchItemsForSale", "buyer": "RegisterItemForSale",
             "product_db": "MakePurchase", "customer_db": "DisplayItemsForSale"}[service]
    assert_error(conn.send_json({"op": other, "id": 9}), "unknown_op", 9)


def test_id_echoed_on_success(market, raw_to, unique):
    conn = raw_to(market.seller_server.address)
    for request_id in ["s", 12, {"k": [1, 2]}]:
        reply = conn.send_json({"op": "CreateAccount", "id": request_id,
                                "args": {"username": unique("idecho"), "password": "pw"}})
        assert reply["ok"] is True and reply["id"] == request_id
        assert set(reply) == {"ok", "result", "id"}
        assert isinstance(reply["result"]["seller_id"], int)


@pytest.mark.parametrize("service", SERVICES)
def test_line_over_one_mib_is_too_large_and_closes(market, raw_to, service):
    address = all_services(market)[service]
    watcher = raw_to(address)
    conn = raw_to(address)
    assert_usable(conn)
    line = b'{"op":"NoSuchOp","id":"' + b"x" * (MIB - 24) + b'"}'
    assert len(line) == MIB + 1
    reply = conn.send(line + b"\n")
    assert_error(reply, "too_large")
    assert conn.is_closed()
    assert_usable(watcher)


def test_far_longer_line_is_refused_without_disturbing_others(market, raw_to):
    address = market.buyer_server.address
    watcher = raw_to(address)
    conn = raw_to(address)
    try:
        reply = conn.send(b"y" * (3 * MIB) + b"\n")
    except ConnectionError:  # the server closed while we were still sending
        reply = None
    if reply is not None:
        assert_error(reply, "too_large")
    assert conn.is_closed()
    assert_usable(watcher)


@pytest.mark.parametrize("service", SERVICES)
def test_line_of_exactly_one_mib_passes_framing(market, raw_to, service):
    conn = raw_to(all_services(market)[service])
    padding = "p" * (MIB - len('{"op":"NoSuchOp","id":""}'))
    line = json.dumps({"op": "NoSuchOp", "id": padding}, separators=(",", ":")).encode()
    assert len(line) == MIB
    reply = conn.send(line + b"\n")
    # Its error reply, with the id echoed, would pass 1 MiB: no reply may, so the id is null.
    assert_error(reply, "unknown_op", None)
    assert_usable(conn)


def test_many_requests_pipelined_on_one_connection_answer_in_order(market, raw_to):
    conn = raw_to(market.seller_server.address)
    conn.write(b"".join(b'{"op":"Nope","id":%d}\n' % i for i in range(200)))
    ids = [json.loads(conn.read_line())["id"] for _ in range(200)]
    assert ids == list(range(200))


def test_abuse_on_one_connection_never_stalls_another(market, raw_to):
    """A stalled half line and a stream of junk on some connections; another client is served."""
    address = market.seller_server.address
    stalled = raw_to(address)
    stalled.write(b'{"op": "Login", "args": {"user')
    failures, served = [], []
    stop = threading.Event()

    def steady_client() -> None:
        conn = Wire(address)
        try:
            for i in range(10_000):
                if stop.is_set():
                    return
                reply = conn.send_json({"op": "Login", "id": i,
                                        "args": {"username": "nobody", "password": "x"}})
                (served if reply["error"]["code"] == "auth_failed" else failures).append(reply)
        finally:
            conn.close()

    thread = threading.Thread(target=steady_client)
    thread.start()
    try:
        abuser = raw_to(address)
        for _ in range(3):
            for line in BAD_LINES.values():
                assert_error(abuser.send(line), "bad_request")
        big = raw_to(address)
        assert_error(big.send(b"z" * (MIB + 1) + b"\n"), "too_large")
    finally:
        stop.set()
        thread.join(10)
    assert not failures
    assert served, "the steady client was not served while others misbehaved"
    stalled.write(b'name": "nobody", "password": "x"}}\n')
    assert_error(json.loads(stalled.read_line()), "auth_failed")


def test_session_field_rules(market, raw_to, unique):
    conn = raw_to(market.seller_server.address)
    name = unique("sessrule")
    assert conn.send_json({"op": "CreateAccount",
                           "args": {"username": name, "password": "pw"}})["ok"]
    for message in [{"op": "Logout"}, {"op": "Logout", "session": ""},
                    {"op": "Logout", "session": None}, {"op": "Logout", "session": "nope"}]:
        assert_error(conn.send_json(message), "invalid_session")
    for session in [7, ["t"], {"t": 1}, True]:
        assert_error(conn.send_json({"op": "Logout", "session": session}), "bad_request")
        assert_error(conn.send_json({"op": "Login", "session": session,
                                     "args": {"username": name, "password": "pw"}}), "bad_request")
    # Login and CreateAccount ignore a (string) session; args may be omitted when empty.
    login = conn.send_json({"op": "Login", "session": "stale",
                            "args": {"username": name, "password": "pw"}})
    assert login["ok"]
    reply = conn.send_json({"op": "DisplayItemsForSale", "session": login["result"]["session"]})
    assert reply == {"ok": True, "result": {"items": [], "next": None}, "id": None}


def hand(conn: Wire, line: str) -> dict:
    """Send one hand-written JSON line; return the result of a success reply."""
    reply = conn.send(line.encode() + b"\n")
    assert reply["ok"] is True, (line, reply)
    return reply["result"]


def test_a_client_written_from_the_spec_alone(market, raw_to, unique):
    """A whole seller + buyer story in literal JSON lines, as the spec shows them."""
    seller = raw_to(market.seller_server.address)
    buyer = raw_to(market.buyer_server.address)
    s_name, b_name = unique("specseller"), unique("specbuyer")

    seller_id = hand(seller, '{"op": "CreateAccount", "args": {"username": "%s", '
                             '"password": "s3cret"}, "id": 1}' % s_name)["seller_id"]
    login = hand(seller, '{"op": "Login", "args": {"username": "%s", "password": "s3cret"}}'
                 % s_name)
    assert login["seller_id"] == seller_id and len(login["session"]) >= 22
    s_session = login["session"]
    item_id = hand(seller, '{"op": "RegisterItemForSale", "session": "%s", "args": '
                           '{"name": "Red lamp", "category": 42, "keywords": ["lamp", "Red"], '
                           '"condition": "used", "price": 12.25, "quantity": 4}}'
                   % s_session)["item_id"]
    items = hand(seller, '{"op": "DisplayItemsForSale", "session": "%s"}' % s_session)["items"]
    assert items == [{"item_id": item_id, "name": "Red lamp", "category": 42,
                      "keywords": ["lamp", "Red"], "condition": "used", "price": 12.25,
                      "quantity": 4, "seller_id": seller_id, "thumbs_up": 0,
                      "thumbs_down": 0}]
    item = hand(seller, '{"op": "ChangeItemPrice", "session": "%s", "args": {"item_id": %d, '
                        '"price": 10}}' % (s_session, item_id))["item"]
    assert item["price"] == 10

    buyer_id = hand(buyer, '{"op": "CreateAccount", "args": {"username": "%s", '
                           '"password": "pw"}}' % b_name)["buyer_id"]
    b_session = hand(buyer, '{"op": "Login", "args": {"username": "%s", "password": "pw"}}'
                     % b_name)["session"]
    found = hand(buyer, '{"op": "SearchItemsForSale", "session": "%s", "args": '
                        '{"category": 42, "keywords": ["RED"]}}' % b_session)["items"]
    assert [i["item_id"] for i in found] == [item_id]
    assert hand(buyer, '{"op": "GetItem", "session": "%s", "args": {"item_id": %d}}'
                % (b_session, item_id))["item"] == {**items[0], "price": 10}
    cart = hand(buyer, '{"op": "AddItemToCart", "session": "%s", "args": {"item_id": %d, '
                       '"quantity": 3}}' % (b_session, item_id))["cart"]
    assert cart == {"lines": [{"item_id": item_id, "name": "Red lamp", "price": 10,
                               "quantity": 3, "line_total": 30, "available": True}],
                    "total": 30}
    cart = hand(buyer, '{"op": "RemoveItemFromCart", "session": "%s", "args": {"item_id": %d, '
                       '"quantity": 1}}' % (b_session, item_id))["cart"]
    assert cart["total"] == 20
    assert hand(buyer, '{"op": "SaveCart", "session": "%s"}' % b_session)["cart"] == cart
    assert hand(buyer, '{"op": "DisplayCart", "session": "%s", "args": {}}' % b_session)["cart"] \
        == cart
    purchase = hand(buyer, '{"op": "MakePurchase", "session": "%s", "args": {"card_name": '
                           '"A Buyer", "card_number": "4111111111111111", "expiry": "12/99"}}'
                    % b_session)["purchase"]
    assert set(purchase) == {"purchase_id", "time", "lines", "total", "card_last4"}
    assert purchase["lines"] == [{"item_id": item_id, "name": "Red lamp", "quantity": 2,
                                  "price": 10, "line_total": 20, "seller_id": seller_id}]
    assert (purchase["total"], purchase["card_last4"]) == (20, "1111")
    assert hand(buyer, '{"op": "ClearCart", "session": "%s"}' % b_session)["cart"] == \
        {"lines": [], "total": 0}
    assert hand(buyer, '{"op": "ProvideFeedback", "session": "%s", "args": {"item_id": %d, '
                       '"vote": "up"}}' % (b_session, item_id)) == {}
    rating = hand(buyer, '{"op": "GetSellerRating", "session": "%s", "args": {"seller_id": %d}}'
                  % (b_session, seller_id))
    assert (rating["seller_id"], rating["thumbs_up"], rating["thumbs_down"]) == (seller_id, 1, 0)
    history = hand(buyer, '{"op": "GetBuyerPurchases", "session": "%s"}' % b_session)
    assert history["purchases"] == [purchase]
    assert hand(buyer, '{"op": "Logout", "session": "%s"}' % b_session) == {}

    rating = hand(seller, '{"op": "GetSellerRating", "session": "%s"}' % s_session)
    assert (rating["seller_id"], rating["thumbs_up"], rating["thumbs_down"]) == (seller_id, 1, 0)
    item = hand(seller, '{"op": "UpdateUnitsForSale", "session": "%s", "args": {"item_id": %d, '
                        '"quantity": 2}}' % (s_session, item_id))["item"]
    assert (item["quantity"], item["thumbs_up"]) == (0, 1)
    assert hand(seller, '{"op": "Logout", "session": "%s"}' % s_session) == {}
    assert_error(seller.send(b'{"op": "GetSellerRating", "session": "%s", "id": "x"}\n'
                             % s_session.encode()), "invalid_session", "x")
    assert buyer_id >= 1
