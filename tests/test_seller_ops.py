"""Seller frontend (spec section 4), account validation of both frontends (section 2)."""
from __future__ import annotations

import pytest
from helpers.wire import Wire

ITEM_FIELDS = {"item_id", "name", "category", "keywords", "condition", "price", "quantity",
               "seller_id", "thumbs_up", "thumbs_down"}
LAMP = {"name": "lamp", "category": 3, "keywords": ["desk"], "condition": "new", "price": 17.5,
        "quantity": 5}


def send_raw(address: tuple[str, int], line: str) -> dict:
    """One hand-written JSON line (for numbers a float cannot spell) -> the reply."""
    with Wire(address) as wire:
        return wire.send(line.encode() + b"\n")


# -- accounts (both frontends) ------------------------------------------------

@pytest.mark.parametrize("role", ["seller", "buyer"])
def test_create_account_login_and_logout(market, unique, role):
    api = getattr(market, role)()
    name = unique(role)
    created = api("CreateAccount", username=name, password="pw")
    assert set(created) == {f"{role}_id"} and created[f"{role}_id"] >= 1
    login = api("Login", username=name, password="pw")
    assert login[f"{role}_id"] == created[f"{role}_id"]
    assert isinstance(login["session"], str) and len(login["session"]) >= 22
    assert api.error("CreateAccount", username=name, password="other") == "conflict"
    assert api.error("Login", username=name, password="wrong") == "auth_failed"
    assert api.error("Login", username=unique("ghost"), password="pw") == "auth_failed"
    api.session = login["session"]
    assert api("Logout") == {}
    assert api.error("Logout") == "invalid_session"


def test_usernames_are_unique_per_role_only(market, unique):
    name = unique("both")
    seller_id = market.seller()("CreateAccount", username=name, password="a")["seller_id"]
    buyer_id = market.buyer()("CreateAccount", username=name, password="b")["buyer_id"]
    assert seller_id >= 1 and buyer_id >= 1
    assert market.seller().error("Login", username=name, password="b") == "auth_failed"
    assert market.buyer().error("Login", username=name, password="a") == "auth_failed"


def fresh_name(unique, length: int) -> str:
    base = unique("u")
    return (base * length)[:length] if length >= len(base) else base[:length]


@pytest.mark.parametrize("role", ["seller", "buyer"])
def test_username_and_password_limits(market, unique, role):
    api = getattr(market, role)()
    for name in [fresh_name(unique, 32), fresh_name(unique, 31), "\u00e9" + unique("x"),
                 unique("a b")]:
        api("CreateAccount", username=name, password="pw")
        assert api("Login", username=name, password="pw")["session"]
    for password in ["p", "p" * 128, "tab\there", " spaces ", "\u00fcnic\u00f6de"]:
        name = unique("pw")
        api("CreateAccount", username=name, password=password)
        assert api("Login", username=name, password=password)["session"]
    bad_names = ["", "n" * 33, "a\x00b", "new\nline", "a\tb", "del\x7f", "c1\x85", 7, None,
                 ["x"]]
    for name in bad_names:
        assert api.error("CreateAccount", username=name, password="pw") == "bad_request", name
        assert api.error("Login", username=name, password="pw") == "bad_request", name
    for password in ["", "p" * 129, 12, None]:
        assert api.error("CreateAccount", username=unique("x"), password=password) == \
            "bad_request"


def test_one_character_username(market):
    api = market.seller()
    api("CreateAccount", username="\u03a9", password="pw")
    assert api("Login", username="\u03a9", password="pw")["session"]
    assert api.error("CreateAccount", username="\u03a9", password="pw") == "conflict"


def test_account_args_envelope(market, unique):
    api = market.seller()
    name = unique("env")
    assert api.error("CreateAccount", username=name) == "bad_request"
    assert api.error("CreateAccount", password="pw") == "bad_request"
    assert api.error("CreateAccount", username=name, password="pw", admin=True) == "bad_request"
    assert api.error("CreateAccount") == "bad_request"
    # Nothing was created by the failures above.
    api("CreateAccount", username=name, password="pw")


# -- items --------------------------------------------------------------------

def test_register_display_and_item_shape(seller):
    first = seller("RegisterItemForSale", **LAMP)["item_id"]
    second = seller("RegisterItemForSale", **{**LAMP, "name": "Chair", "category": 0,
                                               "keywords": ["Oak", "oak", "OAK", "wood", "Wood"],
                                               "condition": "used", "price": 1000000,
                                               "quantity": 1})["item_id"]
    assert second > first
    items = seller("DisplayItemsForSale")["items"]
    assert [i["item_id"] for i in items] == [first, second]
    assert all(set(item) == ITEM_FIELDS for item in items)
    assert items[0] == {"item_id": first, "name": "lamp", "category": 3, "keywords": ["desk"],
                        "condition": "new", "price": 17.5, "quantity": 5,
                        "seller_id": seller.seller_id, "thumbs_up": 0, "thumbs_down": 0}
    assert items[1]["keywords"] == ["Oak", "wood"]  # kept as given, duplicates dropped
    assert (items[1]["price"], items[1]["condition"]) == (1000000, "used")


def test_display_shows_only_own_items(market, seller, unique):
    other = market.seller()
    other.register(unique("other"))
    other("RegisterItemForSale", **LAMP)
    assert other("DisplayItemsForSale")["items"][0]["seller_id"] != seller.seller_id
    assert seller("DisplayItemsForSale")["items"] == []


ITEM_LIMITS_OK = [
    ("name", "n"), ("name", "n" * 32), ("name", "with space"),
    ("category", 0), ("category", 99),
    ("keywords", []), ("keywords", ["a", "b", "c", "d", "e"]), ("keywords", ["k" * 8]),
    ("keywords", ["\u00e9t\u00e9"]),
    ("condition", "new"), ("condition", "used"),
    ("price", 0.01), ("price", 1000000), ("price", 1000000.0), ("price", 17.5), ("price", 3),
    ("price", 999999.99),
    ("quantity", 1), ("quantity", 1000000),
]
ITEM_LIMITS_BAD = [
    ("name", ""), ("name", "n" * 33), ("name", "a\nb"), ("name", 5),
    ("category", -1), ("category", 100), ("category", "1"), ("category", 1.0),
    ("category", True), ("category", None),
    ("keywords", ["a", "b", "c", "d", "e", "f"]), ("keywords", ["k" * 9]), ("keywords", [""]),
    ("keywords", ["two words"]), ("keywords", ["tab\t"]), ("keywords", ["nbsp\u00a0x"]),
    ("keywords", "desk"), ("keywords", [3]), ("keywords", None),
    ("condition", "NEW"), ("condition", "refurb"), ("condition", ""), ("condition", 1),
    ("price", 0), ("price", 0.0), ("price", -1), ("price", 0.001), ("price", 1000000.01),
    ("price", 17.555), ("price", "17.5"), ("price", True), ("price", None), ("price", 1e300),
    ("quantity", 0), ("quantity", -1), ("quantity", 1000001), ("quantity", True),
    ("quantity", 1.0), ("quantity", 1.5), ("quantity", "1"),
]


def test_register_item_accepts_each_boundary(seller):
    for field, value in ITEM_LIMITS_OK:
        item_id = seller("RegisterItemForSale", **{**LAMP, field: value})["item_id"]
        item = next(i for i in seller("DisplayItemsForSale")["items"] if i["item_id"] == item_id)
        assert item[field] == value, (field, value)


def test_register_item_rejects_each_value_past_a_boundary(seller):
    for field, value in ITEM_LIMITS_BAD:
        assert seller.error("RegisterItemForSale", **{**LAMP, field: value}) == "bad_request", \
            (field, value)
    assert seller("DisplayItemsForSale")["items"] == []


def test_register_item_field_presence(seller):
    for field in LAMP:
        args = {k: v for k, v in LAMP.items() if k != field}
        assert seller.error("RegisterItemForSale", **args) == "bad_request", field
    assert seller.error("RegisterItemForSale", **LAMP, colour="red") == "bad_request"
    assert seller("DisplayItemsForSale")["items"] == []


PRICES_ON_THE_WIRE = [
    ("0.001", None), ("1e400", None), ("-1e400", None), ("1e-400", None), ("0.00", None),
    ("0.0100000000000000000000000000001", None), ("1000000.001", None), ("-0", None),
    ("1e999999999999", None), ("17.5000000000000000000000000000000001", None),
    ("1E2", 100), ("0.01e0", 0.01), ("17.50", 17.5), ("1000000.00", 1000000), ("100.000", 100),
]


def test_price_as_written_on_the_wire(market, seller):
    """JSON numbers a Python float cannot spell exactly, sent as literal text."""
    seller.item_id = seller("RegisterItemForSale", **{**LAMP, "price": 42})["item_id"]
    for price, accepted in PRICES_ON_THE_WIRE:
        reply = send_raw(market.seller_server.address,
                         '{"op": "ChangeItemPrice", "session": "%s", "args": {"item_id": %d, '
                         '"price": %s}}' % (seller.session, seller.item_id, price))
        shown = seller("DisplayItemsForSale")["items"][0]["price"]
        if accepted is None:
            assert reply["error"]["code"] == "bad_request", (price, reply)
            assert "price" in reply["error"]["message"]
            assert shown == 42, price
        else:
            assert reply["ok"] and reply["result"]["item"]["price"] == accepted, (price, reply)
            assert shown == accepted
            seller("ChangeItemPrice", item_id=seller.item_id, price=42)
    for not_json in ["NaN", "Infinity", "-Infinity"]:
        reply = send_raw(market.seller_server.address,
                         '{"op": "ChangeItemPrice", "session": "%s", "args": {"item_id": %d, '
                         '"price": %s}}' % (seller.session, seller.item_id, not_json))
        assert reply["error"]["code"] == "bad_request", (not_json, reply)
    assert seller("DisplayItemsForSale")["items"][0]["price"] == 42


# -- ChangeItemPrice / UpdateUnitsForSale ---------------------------------------

def test_change_item_price(market, seller, unique):
    item_id = seller("RegisterItemForSale", **LAMP)["item_id"]
    item = seller("ChangeItemPrice", item_id=item_id, price=0.01)["item"]
    assert set(item) == ITEM_FIELDS and (item["item_id"], item["price"]) == (item_id, 0.01)
    assert seller("ChangeItemPrice", item_id=item_id, price=1000000)["item"]["price"] == 1000000
    for price in [0, 0.001, 1000000.01, "5", True, -3]:
        assert seller.error("ChangeItemPrice", item_id=item_id, price=price) == "bad_request"
    assert seller.error("ChangeItemPrice", item_id=item_id) == "bad_request"
    assert seller.error("ChangeItemPrice", price=5) == "bad_request"
    assert seller.error("ChangeItemPrice", item_id=10 ** 9, price=5) == "not_found"
    other = market.seller()
    other.register(unique("thief"))
    assert other.error("ChangeItemPrice", item_id=item_id, price=1) == "forbidden"
    assert seller("DisplayItemsForSale")["items"][0]["price"] == 1000000


def test_item_id_must_be_a_positive_int(seller, buyer):
    for item_id in [0, -1, "1", 1.0, True, None, [1], 2 ** 80]:
        assert seller.error("ChangeItemPrice", item_id=item_id, price=5) == "bad_request"
        assert seller.error("UpdateUnitsForSale", item_id=item_id, quantity=1) == "bad_request"
        assert buyer.error("GetItem", item_id=item_id) == "bad_request"
        assert buyer.error("AddItemToCart", item_id=item_id, quantity=1) == "bad_request"
        assert buyer.error("RemoveItemFromCart", item_id=item_id, quantity=1) == "bad_request"
        assert buyer.error("ProvideFeedback", item_id=item_id, vote="up") == "bad_request"


def test_update_units_for_sale(market, seller, unique):
    item_id = seller("RegisterItemForSale", **{**LAMP, "quantity": 1000000})["item_id"]
    item = seller("UpdateUnitsForSale", item_id=item_id, quantity=1)["item"]
    assert set(item) == ITEM_FIELDS and item["quantity"] == 999999
    assert seller.error("UpdateUnitsForSale", item_id=item_id, quantity=1000000) == "conflict"
    assert seller.error("UpdateUnitsForSale", item_id=item_id, quantity=1000001) == "bad_request"
    for quantity in [0, -1, True, 1.0, "1"]:
        assert seller.error("UpdateUnitsForSale", item_id=item_id,
                            quantity=quantity) == "bad_request"
    assert seller("DisplayItemsForSale")["items"][0]["quantity"] == 999999
    assert seller.error("UpdateUnitsForSale", item_id=10 ** 9, quantity=1) == "not_found"
    other = market.seller()
    other.register(unique("thief"))
    assert other.error("UpdateUnitsForSale", item_id=item_id, quantity=1) == "forbidden"
    assert seller("UpdateUnitsForSale", item_id=item_id, quantity=999999)["item"]["quantity"] == 0
    assert seller.error("UpdateUnitsForSale", item_id=item_id, quantity=1) == "conflict"


def test_item_at_zero_units_stays_listed_but_hidden(seller, buyer):
    category = 61
    gone = seller("RegisterItemForSale", **{**LAMP, "category": category, "quantity": 2})["item_id"]
    kept = seller("RegisterItemForSale", **{**LAMP, "category": category})["item_id"]
    buyer("AddItemToCart", item_id=gone, quantity=2)
    seller("UpdateUnitsForSale", item_id=gone, quantity=2)
    shown = seller("DisplayItemsForSale")["items"]
    assert [(i["item_id"], i["quantity"]) for i in shown] == [(gone, 0), (kept, 5)]
    for args in [{}, {"keywords": ["desk"]}]:
        found = buyer("SearchItemsForSale", category=category, **args)["items"]
        assert [i["item_id"] for i in found] == [kept]
    assert buyer("GetItem", item_id=gone)["item"]["quantity"] == 0
    assert buyer.error("AddItemToCart", item_id=gone, quantity=1) == "conflict"
    line = buyer("DisplayCart")["cart"]["lines"][0]
    assert (line["item_id"], line["available"]) == (gone, False)


def test_get_seller_rating_of_a_new_seller(seller):
    rating = seller("GetSellerRating")
    assert {k: rating[k] for k in ("seller_id", "thumbs_up", "thumbs_down")} == \
        {"seller_id": seller.seller_id, "thumbs_up": 0, "thumbs_down": 0}
    assert seller.error("GetSellerRating", seller_id=seller.seller_id) == "bad_request"


SELLER_OPS = {"Logout": {}, "GetSellerRating": {}, "RegisterItemForSale": LAMP,
              "ChangeItemPrice": {"item_id": 1, "price": 2}, "DisplayItemsForSale": {},
              "UpdateUnitsForSale": {"item_id": 1, "quantity": 1}}


@pytest.mark.parametrize("op", SELLER_OPS)
def test_every_seller_op_needs_a_live_session(market, seller, op):
    anonymous = market.seller()
    assert anonymous.error(op, **SELLER_OPS[op]) == "invalid_session"
    anonymous.session = "x" * 43
    assert anonymous.error(op, **SELLER_OPS[op]) == "invalid_session"
    assert seller.error(op, **SELLER_OPS[op], extra=1) == "bad_request"


def test_buyer_ops_are_unknown_at_the_seller_frontend(seller):
    for op in ["SearchItemsForSale", "AddItemToCart", "MakePurchase", "GetBuyerPurchases",
               "getsellerrating", ""]:
        assert seller.error(op) == "unknown_op", op
