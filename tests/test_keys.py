"""Contract §11, idempotency keys: a write resent with its key, at any frontend, after a lost
reply, a stalled database or a restart, gives its first outcome and changes nothing more.

Real processes over real sockets; ``tests/helpers/proxy.py`` loses chosen replies between the buyer
frontend and the customer database.
"""
from __future__ import annotations

import pytest
from helpers.market import Api, Market, listing, sigstop, stall, start_market, units
from helpers.proxy import ReplyDropper

from protocol import ApiError, decode, encode, result_of


def send(api: Api, op: str, key: object = None, **args) -> dict:
    """``op`` with ``idempotency_key`` (none when ``key`` is None); the result, or raises."""
    message = {"op": op, "args": args, "session": api.session}
    if key is not None:
        message["idempotency_key"] = key
    return result_of(decode(api.client.exchange(lambda: encode(message)), exact=False))


def refused(api: Api, op: str, key: object = None, **args) -> ApiError:
    with pytest.raises(ApiError) as caught:
        send(api, op, key, **args)
    return caught.value


def item_of(seller: Api, item_id: int) -> dict:
    return next(i for i in seller("DisplayItemsForSale")["items"] if i["item_id"] == item_id)


def seller_item_buyer(market: Market, unique, units: int = 10,
                      buyer: Api | None = None) -> tuple[Api, int, Api]:
    """A new seller with one item of ``units`` units, and a new buyer (``market.buyer()``
    unless given), both registered."""
    seller = market.seller()
    seller.register(unique("sue"))
    item_id = listing(seller, quantity=units)
    buyer = buyer or market.buyer()
    buyer.register(unique("bea"))
    return seller, item_id, buyer


def cart_lines(reply: dict) -> list[tuple[int, int]]:
    return [(line["item_id"], line["quantity"]) for line in reply["cart"]["lines"]]


# -- resent at a second frontend: the first outcome, nothing changed twice -------------------

def test_seller_writes_resent_at_another_frontend_apply_once(two_frontends, unique):
    here = two_frontends.seller()
    here.register(unique("sue"))
    there = two_frontends.client_of(two_frontends.seller_b, here.session)
    item = {"name": "vase", "category": 4, "keywords": ["clay"], "condition": "new",
            "price": 5, "quantity": 5}
    first = send(here, "RegisterItemForSale", "register-key-0001", **item)
    assert send(there, "RegisterItemForSale", "register-key-0001", **item) == first
    item_id = first["item_id"]
    assert [i["item_id"] for i in here("DisplayItemsForSale")["items"]] == [item_id]

    removed = send(here, "UpdateUnitsForSale", "remove-key-00001", item_id=item_id, quantity=2)
    assert removed["item"]["quantity"] == 3
    again = send(there, "UpdateUnitsForSale", "remove-key-00001", item_id=item_id, quantity=2)
    assert again == removed and item_of(here, item_id)["quantity"] == 3  # 5 -> 3, not 1

    priced = send(here, "ChangeItemPrice", "price-key-000001", item_id=item_id, price=7)
    send(here, "ChangeItemPrice", "price-key-000002", item_id=item_id, price=9)
    assert send(there, "ChangeItemPrice", "price-key-000001", item_id=item_id, price=7) == priced
    assert item_of(here, item_id)["price"] == 9  # the resend changed nothing

    # A final error is the first outcome too.
    too_many = refused(here, "UpdateUnitsForSale", "remove-key-00002", item_id=item_id,
                       quantity=4)
    again = refused(there, "UpdateUnitsForSale", "remove-key-00002", item_id=item_id,
                    quantity=4)
    assert (too_many.code, too_many.message) == (again.code, again.message) == (
        "conflict", too_many.message)


def test_cart_writes_resent_at_another_frontend_apply_once(two_frontends, unique):
    seller = two_frontends.seller()
    seller.register(unique("sue"))
    vase, bowl = listing(seller, "vase", quantity=10), listing(seller, "bowl", quantity=10)
    here, name = two_frontends.buyer(), unique("bea")
    here.register(name)
    there = two_frontends.client_of(two_frontends.buyer_b, here.session)

    added = send(here, "AddItemToCart", "add-key-00000001", item_id=vase, quantity=5)
    assert send(there, "AddItemToCart", "add-key-00000001", item_id=vase, quantity=5) == added
    assert cart_lines(added) == [(vase, 5)]

    removed = send(here, "RemoveItemFromCart", "remove-key-00001", item_id=vase, quantity=2)
    assert cart_lines(removed) == [(vase, 3)]
    again = send(there, "RemoveItemFromCart", "remove-key-00001", item_id=vase, quantity=2)
    assert again == removed and cart_lines(here("DisplayCart")) == [(vase, 3)]  # not 1

    saved = send(here, "SaveCart", "save-key-0000001")
    send(here, "AddItemToCart", "add-key-00000002", item_id=bowl, quantity=1)
    # A cart change's resend shows the cart as it is now; it saves nothing again.
    assert cart_lines(send(there, "SaveCart", "save-key-0000001")) == [(vase, 3), (bowl, 1)]
    assert cart_lines(saved) == [(vase, 3)]
    fresh = two_frontends.buyer()
    fresh.login(name)
    assert cart_lines(fresh("DisplayCart")) == [(vase, 3)]  # the saved cart is the first one

    assert cart_lines(send(here, "ClearCart", "clear-key-000001")) == []
    send(here, "AddItemToCart", "add-key-00000003", item_id=bowl, quantity=2)
    assert cart_lines(send(there, "ClearCart", "clear-key-000001")) == [(bowl, 2)]


def test_create_account_resent_at_another_frontend_creates_one(two_frontends, unique):
    name = unique("cy")
    here, there = two_frontends.buyer(), two_frontends.client_of(two_frontends.buyer_b, None)
    first = send(here, "CreateAccount", "account-key-0001", username=name, password="pw")
    assert send(there, "CreateAccount", "account-key-0001", username=name, password="pw") == first
    assert refused(there, "CreateAccount", "account-key-0001", username=name,
                   password="other").code == "conflict"
    assert here.login(name, "pw")["buyer_id"] == first["buyer_id"]
    # Without a key a second CreateAccount is a second request: the name is taken.
    assert refused(here, "CreateAccount", username=name, password="pw").code == "conflict"
    # The same key for the same name as a seller is another account's key.
    seller = send(two_frontends.seller(), "CreateAccount", "account-key-0001",
                  username=name, password="pw")
    assert set(seller) == {"seller_id"}


# -- what a key may be, and where ---------------------------------------------------------

def test_the_same_key_for_another_request_is_conflict(two_frontends, unique):
    seller = two_frontends.seller()
    seller.register(unique("sue"))
    item_id = listing(seller, quantity=10)
    buyer = two_frontends.buyer()
    buyer.register(unique("bea"))
    send(buyer, "AddItemToCart", "some-key-0000001", item_id=item_id, quantity=1)
    assert refused(buyer, "AddItemToCart", "some-key-0000001", item_id=item_id,
                   quantity=2).code == "conflict"
    assert refused(buyer, "RemoveItemFromCart", "some-key-0000001", item_id=item_id,
                   quantity=1).code == "conflict"
    assert cart_lines(buyer("DisplayCart")) == [(item_id, 1)]
    # Keys are per account: another buyer's same key is its own.
    other = two_frontends.buyer()
    other.register(unique("bob"))
    assert cart_lines(send(other, "AddItemToCart", "some-key-0000001", item_id=item_id,
                           quantity=2)) == [(item_id, 2)]


@pytest.mark.parametrize("op, args", [
    ("DisplayCart", {}), ("GetItem", {"item_id": 1}), ("Logout", {}),
    ("Login", {"username": "x", "password": "y"}), ("GetBuyerPurchases", {}),
    ("SearchItemsForSale", {"category": 1})])
def test_a_key_on_an_op_that_takes_none_is_bad_request(two_frontends, op, args):
    buyer = two_frontends.buyer()
    assert refused(buyer, op, "read-key-0000001", **args).code == "bad_request"


@pytest.mark.parametrize("key", ["short", "x" * 65, "has space 000000", "ключ-ключ-ключ-ключ",
                                 16, ["k" * 16]])
def test_a_malformed_key_is_bad_request_and_changes_nothing(two_frontends, unique, key):
    buyer = two_frontends.buyer()
    buyer.register(unique("bea"))
    error = refused(buyer, "ClearCart", key)
    assert error.code == "bad_request" and "idempotency_key" in error.message


# -- lost replies, stalled databases, restarts --------------------------------------------

def test_a_lost_cart_reply_is_asked_again_with_the_key(unique):
    """The customer database applies RemoveFromCart and its reply is lost: the frontend's
    resend with the same key gets the first outcome (units removed once)."""
    market = start_market()
    proxy = ReplyDropper(market.customer_db.address)
    try:
        behind = market.another_frontend("buyer_server.py", "--customer-db", proxy.addr)
        _, item_id, buyer = seller_item_buyer(market, unique, buyer=market.client_of(behind))
        buyer("AddItemToCart", item_id=item_id, quantity=5)

        proxy.drop("RemoveFromCart")
        assert cart_lines(buyer("RemoveItemFromCart", item_id=item_id, quantity=2)) == \
            [(item_id, 3)]
        assert proxy.dropped["RemoveFromCart"] == 1
        # Both replies lost: the frontend cannot know, says so, and the key tells later.
        proxy.drop("RemoveFromCart", times=2)
        error = refused(buyer, "RemoveItemFromCart", "lost-key-0000001", item_id=item_id,
                        quantity=2)
        assert error.code == "deadline_exceeded"
        assert cart_lines(send(buyer, "RemoveItemFromCart", "lost-key-0000001",
                               item_id=item_id, quantity=2)) == [(item_id, 1)]
        assert cart_lines(buyer("DisplayCart")) == [(item_id, 1)]
    finally:
        proxy.close()
        market.stop()


def test_a_cart_change_whose_cart_cannot_be_shown_is_deadline_exceeded(unique):
    """Finding 1: the product database stalled right after a cart change; the reply said
    `unavailable` (nothing changed) and the retry removed the units again (5 -> 3 -> 1)."""
    market = start_market(db_timeout=1.0)
    try:
        _, item_id, buyer = seller_item_buyer(market, unique)
        buyer("AddItemToCart", item_id=item_id, quantity=5)

        resume = stall(market, market.product_db)
        try:
            keyed = refused(buyer, "RemoveItemFromCart", "stall-key-000001", item_id=item_id,
                            quantity=2)
            unkeyed = refused(buyer, "RemoveItemFromCart", item_id=item_id, quantity=1)
        finally:
            resume()
        assert keyed.code == unkeyed.code == "deadline_exceeded"
        assert "changed" in keyed.message and "idempotency_key" in keyed.message
        assert "DisplayCart" in unkeyed.message
        again = send(buyer, "RemoveItemFromCart", "stall-key-000001", item_id=item_id,
                     quantity=2)
        assert cart_lines(again) == [(item_id, 2)]  # 5 - 2 - 1, each once
        assert cart_lines(buyer("DisplayCart")) == [(item_id, 2)]
    finally:
        market.stop()


def test_a_resend_that_cannot_reach_a_database_is_never_told_nothing_changed(unique):
    """Review finding: AddItemToCart with a key was applied; its resend, while the product
    database was stalled, failed before reaching the keyed write and was told `unavailable`
    ("nothing was changed") though the first send had changed the cart."""
    market = start_market(db_timeout=1.0)
    try:
        _, item_id, buyer = seller_item_buyer(market, unique)
        send(buyer, "AddItemToCart", "added-key-000001", item_id=item_id, quantity=3)
        resume = stall(market, market.product_db)
        try:
            error = refused(buyer, "AddItemToCart", "added-key-000001", item_id=item_id,
                            quantity=3)
        finally:
            resume()
        assert error.code == "deadline_exceeded", error.message
        assert "same key" in error.message
        again = send(buyer, "AddItemToCart", "added-key-000001", item_id=item_id, quantity=3)
        assert cart_lines(again) == [(item_id, 3)]  # added once
    finally:
        market.stop()


@pytest.mark.parametrize("database", ["customer_db", "product_db"])
def test_a_write_to_a_stalled_database_is_deadline_exceeded_and_its_key_tells(database, unique):
    """A write sent to a database that then stops answering may have been applied:
    `deadline_exceeded`, never `unavailable`; once it answers, the resend applies it once."""
    market = start_market(db_timeout=1.0)
    try:
        seller, item_id, buyer = seller_item_buyer(market, unique)
        buyer("AddItemToCart", item_id=item_id, quantity=5)
        api, op, args = ((buyer, "RemoveItemFromCart", {"item_id": item_id, "quantity": 2})
                         if database == "customer_db" else
                         (seller, "UpdateUnitsForSale", {"item_id": item_id, "quantity": 2}))
        resume = sigstop(getattr(market, database))
        try:
            assert refused(api, op, "stalled-key-0001", **args).code == "deadline_exceeded"
        finally:
            resume()
        send(api, op, "stalled-key-0001", **args)
        send(api, op, "stalled-key-0001", **args)
        if database == "customer_db":
            assert cart_lines(buyer("DisplayCart")) == [(item_id, 3)]
        else:
            assert units(buyer, item_id) == 8
    finally:
        market.stop()


def test_a_key_outlives_a_database_restart(tmp_path, unique):
    """With --data-dir the outcome is journaled with the change it keys: a resend after a
    kill -9 and a restart still gets it (and a snapshot keeps it as well)."""
    market = start_market(data_dir=tmp_path)
    try:
        seller, item_id, buyer = seller_item_buyer(market, unique, units=5)
        buyer("AddItemToCart", item_id=item_id, quantity=4)
        removed = send(seller, "UpdateUnitsForSale", "restart-key-0001", item_id=item_id,
                       quantity=2)
        send(buyer, "RemoveItemFromCart", "restart-key-0002", item_id=item_id, quantity=1)
        for database in (market.product_db, market.customer_db):
            database.kill()
            database.restart()
        assert send(seller, "UpdateUnitsForSale", "restart-key-0001", item_id=item_id,
                    quantity=2) == removed
        assert units(buyer, item_id) == 3
        assert cart_lines(send(buyer, "RemoveItemFromCart", "restart-key-0002",
                               item_id=item_id, quantity=1)) == [(item_id, 3)]
    finally:
        market.stop()
