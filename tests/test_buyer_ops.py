"""Buyer frontend (spec section 5): search, items, carts, feedback, ratings."""
from __future__ import annotations

from helpers.market import CARD

ITEM_FIELDS = {"item_id", "name", "category", "keywords", "condition", "price", "quantity",
               "seller_id", "thumbs_up", "thumbs_down"}
CART_LINE_FIELDS = {"item_id", "name", "price", "quantity", "line_total", "available"}


def listing(seller, name="thing", category=1, keywords=(), price=1, quantity=10,
            condition="new") -> int:
    return seller("RegisterItemForSale", name=name, category=category, keywords=list(keywords),
                  condition=condition, price=price, quantity=quantity)["item_id"]


def ids(items: list[dict]) -> list[int]:
    return [item["item_id"] for item in items]


def lines(cart: dict) -> list[tuple[int, int]]:
    return [(line["item_id"], line["quantity"]) for line in cart["lines"]]


# -- search -------------------------------------------------------------------

def test_search_filters_orders_and_limits(seller, buyer):
    category = 20
    a = listing(seller, "a", category, ["red", "lamp"])
    b = listing(seller, "b", category, ["Lamp"])
    c = listing(seller, "c", category, ["RED", "LAMP", "desk"])
    d = listing(seller, "d", category, ["blue"])
    sold_out = listing(seller, "e", category, ["red", "lamp", "desk"], quantity=1)
    seller("UpdateUnitsForSale", item_id=sold_out, quantity=1)
    listing(seller, "f", category + 1, ["red", "lamp", "desk"])

    def search(**args):
        found = buyer("SearchItemsForSale", category=category, **args)["items"]
        assert all(set(item) == ITEM_FIELDS and item["category"] == category for item in found)
        return ids(found)

    assert search() == [a, b, c, d]
    assert search(keywords=[]) == [a, b, c, d]
    assert search(keywords=["red", "lamp", "desk"]) == [c, a, b]
    assert search(keywords=["DESK", "Lamp"]) == [c, a, b]
    assert search(keywords=["lamp"]) == [a, b, c]
    assert search(keywords=["lamp", "LAMP", "Lamp"]) == [a, b, c]  # duplicates count once
    assert search(keywords=["lam"]) == []
    assert search(keywords=["nothing"]) == []
    assert search(keywords=["red", "lamp", "desk"], limit=2) == [c, a]
    assert search(limit=1) == [a]
    assert search(limit=500) == [a, b, c, d]
    assert buyer("SearchItemsForSale", category=category + 2)["items"] == []


def test_search_default_limit_is_100(seller, buyer):
    category = 22
    listed = [listing(seller, f"n{i}", category, ["bulk"]) for i in range(101)]
    assert ids(buyer("SearchItemsForSale", category=category)["items"]) == listed[:100]
    assert ids(buyer("SearchItemsForSale", category=category, keywords=["bulk"])["items"]) == \
        listed[:100]
    assert len(buyer("SearchItemsForSale", category=category, limit=101)["items"]) == 101


def test_search_validation(buyer):
    good = {"category": 5}
    bad = [{}, {"category": -1}, {"category": 100}, {"category": "5"}, {"category": True},
           {**good, "limit": 0}, {**good, "limit": 501}, {**good, "limit": 1.0},
           {**good, "limit": True}, {**good, "keywords": ["a", "b", "c", "d", "e", "f"]},
           {**good, "keywords": ["k" * 9]}, {**good, "keywords": ["a b"]},
           {**good, "keywords": [""]}, {**good, "keywords": "red"}, {**good, "page": 2}]
    for args in bad:
        assert buyer.error("SearchItemsForSale", **args) == "bad_request", args
    for args in [{"category": 0}, {"category": 99}, {**good, "keywords": ["k" * 8] * 5}]:
        assert buyer("SearchItemsForSale", **args)["items"] == []


def test_get_item(seller, buyer):
    item_id = listing(seller, "Clock", 9, ["Time", "time", "wall"], price=12.34, quantity=7,
                      condition="used")
    assert buyer("GetItem", item_id=item_id)["item"] == {
        "item_id": item_id, "name": "Clock", "category": 9, "keywords": ["Time", "wall"],
        "condition": "used", "price": 12.34, "quantity": 7, "seller_id": seller.seller_id,
        "thumbs_up": 0, "thumbs_down": 0}
    assert buyer.error("GetItem", item_id=10 ** 9) == "not_found"
    assert buyer.error("GetItem") == "bad_request"
    assert buyer.error("GetItem", item_id=item_id, verbose=True) == "bad_request"


# -- carts --------------------------------------------------------------------

def test_cart_add_remove_clear(seller, buyer):
    x = listing(seller, "x", price=2.5, quantity=10)
    y = listing(seller, "y", price=0.1, quantity=10)
    assert buyer("DisplayCart")["cart"] == {"lines": [], "total": 0}
    cart = buyer("AddItemToCart", item_id=x, quantity=2)["cart"]
    assert cart == {"lines": [{"item_id": x, "name": "x", "price": 2.5, "quantity": 2,
                               "line_total": 5, "available": True}], "total": 5}
    cart = buyer("AddItemToCart", item_id=y, quantity=3)["cart"]
    assert all(set(line) == CART_LINE_FIELDS for line in cart["lines"])
    assert lines(cart) == [(x, 2), (y, 3)]
    assert cart["lines"][1]["line_total"] == 0.3  # exact cents, not 0.30000000000000004
    assert cart["total"] == 5.3
    assert lines(buyer("AddItemToCart", item_id=x, quantity=1)["cart"]) == [(x, 3), (y, 3)]
    assert lines(buyer("RemoveItemFromCart", item_id=x, quantity=1)["cart"]) == [(x, 2), (y, 3)]
    assert lines(buyer("RemoveItemFromCart", item_id=y, quantity=4)["cart"]) == [(x, 2)]
    not_in_cart = listing(seller, "z")
    assert lines(buyer("RemoveItemFromCart", item_id=not_in_cart, quantity=1)["cart"]) == \
        [(x, 2)]
    assert lines(buyer("RemoveItemFromCart", item_id=x, quantity=2)["cart"]) == []
    buyer("AddItemToCart", item_id=y, quantity=1)
    assert buyer("ClearCart")["cart"] == {"lines": [], "total": 0}
    assert buyer("DisplayCart")["cart"] == {"lines": [], "total": 0}


def test_cart_totals_are_exact_cents(seller, buyer):
    dime = listing(seller, "dime", price=0.1)
    fifth = listing(seller, "fifth", price=0.2)
    buyer("AddItemToCart", item_id=dime, quantity=1)
    assert buyer("AddItemToCart", item_id=fifth, quantity=1)["cart"]["total"] == 0.3
    big = listing(seller, "big", price=999999.99, quantity=1000000)
    cart = buyer("AddItemToCart", item_id=big, quantity=1000000)["cart"]
    assert cart["lines"][-1]["line_total"] == 999999990000
    assert cart["total"] == 999999990000.3


def test_cart_quantity_checks(market, seller, buyer, unique):
    item_id = listing(seller, quantity=5)
    assert lines(buyer("AddItemToCart", item_id=item_id, quantity=3)["cart"]) == [(item_id, 3)]
    assert buyer.error("AddItemToCart", item_id=item_id, quantity=3) == "conflict"
    assert lines(buyer("DisplayCart")["cart"]) == [(item_id, 3)]
    assert lines(buyer("AddItemToCart", item_id=item_id, quantity=2)["cart"]) == [(item_id, 5)]
    assert buyer.error("AddItemToCart", item_id=item_id, quantity=1) == "conflict"
    # Carts do not reserve: another buyer may still put all five in theirs.
    other = market.buyer()
    other.register(unique("other"))
    assert lines(other("AddItemToCart", item_id=item_id, quantity=5)["cart"]) == [(item_id, 5)]
    for quantity in [0, -1, 1000001, True, 1.0, "1", None]:
        assert buyer.error("AddItemToCart", item_id=item_id, quantity=quantity) == \
            "bad_request", quantity
        assert buyer.error("RemoveItemFromCart", item_id=item_id, quantity=quantity) == \
            "bad_request", quantity
    assert buyer.error("AddItemToCart", item_id=item_id) == "bad_request"
    assert buyer.error("AddItemToCart", item_id=10 ** 9, quantity=1) == "not_found"
    assert buyer.error("SaveCart", item_id=item_id) == "bad_request"
    assert lines(buyer("DisplayCart")["cart"]) == [(item_id, 5)]


def test_cart_accepts_a_million_units(seller, buyer):
    item_id = listing(seller, quantity=1000000)
    assert lines(buyer("AddItemToCart", item_id=item_id, quantity=1000000)["cart"]) == \
        [(item_id, 1000000)]


def test_cart_shows_current_price_and_availability(seller, buyer):
    item_id = listing(seller, price=3, quantity=5)
    buyer("AddItemToCart", item_id=item_id, quantity=4)
    seller("ChangeItemPrice", item_id=item_id, price=1.25)
    line = buyer("DisplayCart")["cart"]["lines"][0]
    assert (line["price"], line["line_total"], line["available"]) == (1.25, 5, True)
    seller("UpdateUnitsForSale", item_id=item_id, quantity=2)
    line = buyer("DisplayCart")["cart"]["lines"][0]
    assert (line["quantity"], line["available"]) == (4, False)
    assert buyer("RemoveItemFromCart", item_id=item_id, quantity=1)["cart"]["lines"][0][
        "available"] is True


def test_two_sessions_of_one_buyer_have_independent_carts(market, seller, buyer):
    x, y = listing(seller, "x"), listing(seller, "y")
    second = market.buyer()
    assert second.login(buyer.name)["buyer_id"] == buyer.buyer_id
    assert second.session != buyer.session
    buyer("AddItemToCart", item_id=x, quantity=1)
    second("AddItemToCart", item_id=y, quantity=2)
    assert lines(buyer("DisplayCart")["cart"]) == [(x, 1)]
    assert lines(second("DisplayCart")["cart"]) == [(y, 2)]
    second("ClearCart")
    assert lines(buyer("DisplayCart")["cart"]) == [(x, 1)]
    second("Logout")
    assert lines(buyer("DisplayCart")["cart"]) == [(x, 1)]


def test_saved_cart_is_copied_at_login_and_survives_logins(market, seller, buyer):
    x, y = listing(seller, "x"), listing(seller, "y")
    buyer("AddItemToCart", item_id=x, quantity=2)
    assert lines(buyer("SaveCart")["cart"]) == [(x, 2)]
    buyer("AddItemToCart", item_id=y, quantity=1)  # not saved

    later = market.buyer()
    later.login(buyer.name)
    assert lines(later("DisplayCart")["cart"]) == [(x, 2)]
    later("RemoveItemFromCart", item_id=x, quantity=1)  # changes only this session's copy
    assert lines(buyer("DisplayCart")["cart"]) == [(x, 2), (y, 1)]

    buyer("Logout")  # the unsaved y is discarded
    again = market.buyer()
    again.login(buyer.name)
    assert lines(again("DisplayCart")["cart"]) == [(x, 2)]
    again("ClearCart")
    again("SaveCart")  # saving an empty cart empties the saved cart
    fresh = market.buyer()
    fresh.login(buyer.name)
    assert lines(fresh("DisplayCart")["cart"]) == []
    assert lines(later("DisplayCart")["cart"]) == [(x, 1)]  # a live session keeps its own


def test_logout_discards_unsaved_changes(seller, buyer):
    x = listing(seller)
    buyer("AddItemToCart", item_id=x, quantity=1)
    buyer("Logout")
    assert buyer.error("DisplayCart") == "invalid_session"
    buyer.login(buyer.name)
    assert buyer("DisplayCart")["cart"] == {"lines": [], "total": 0}


# -- feedback and ratings -------------------------------------------------------

def rating(api, seller_id: int) -> tuple[int, int]:
    result = api("GetSellerRating", seller_id=seller_id)
    assert result["seller_id"] == seller_id
    return result["thumbs_up"], result["thumbs_down"]


def thumbs(api, item_id: int) -> tuple[int, int]:
    item = api("GetItem", item_id=item_id)["item"]
    return item["thumbs_up"], item["thumbs_down"]


def test_feedback_only_after_purchase_and_once(market, seller, buyer, unique):
    bought = listing(seller, "bought")
    other = listing(seller, "other")
    assert buyer.error("ProvideFeedback", item_id=bought, vote="up") == "conflict"
    buyer("AddItemToCart", item_id=bought, quantity=2)
    buyer("MakePurchase", **CARD)
    assert buyer("ProvideFeedback", item_id=bought, vote="up") == {}
    assert thumbs(buyer, bought) == (1, 0)
    assert rating(buyer, seller.seller_id) == (1, 0)
    assert buyer.error("ProvideFeedback", item_id=bought, vote="up") == "conflict"
    assert buyer.error("ProvideFeedback", item_id=bought, vote="down") == "conflict"
    assert buyer.error("ProvideFeedback", item_id=other, vote="up") == "conflict"
    assert buyer.error("ProvideFeedback", item_id=10 ** 9, vote="up") == "not_found"
    for vote in ["UP", "sideways", "", 1, True, None]:
        assert buyer.error("ProvideFeedback", item_id=bought, vote=vote) == "bad_request"
    assert buyer.error("ProvideFeedback", item_id=bought) == "bad_request"

    critic = market.buyer()
    critic.register(unique("critic"))
    critic("AddItemToCart", item_id=bought, quantity=1)
    critic("MakePurchase", **CARD)
    critic("ProvideFeedback", item_id=bought, vote="down")
    assert thumbs(critic, bought) == (1, 1)
    assert thumbs(critic, other) == (0, 0)
    assert rating(critic, seller.seller_id) == (1, 1)
    own = seller("GetSellerRating")
    assert (own["thumbs_up"], own["thumbs_down"]) == (1, 1)
    shown = next(i for i in seller("DisplayItemsForSale")["items"] if i["item_id"] == bought)
    assert (shown["thumbs_up"], shown["thumbs_down"]) == (1, 1)


def test_get_seller_rating_from_the_buyer_side(seller, buyer):
    assert rating(buyer, seller.seller_id) == (0, 0)
    assert buyer.error("GetSellerRating", seller_id=10 ** 9) == "not_found"
    for seller_id in [0, -1, "1", True, None]:
        assert buyer.error("GetSellerRating", seller_id=seller_id) == "bad_request"
    assert buyer.error("GetSellerRating") == "bad_request"


def test_new_buyer_has_no_purchases(buyer):
    assert buyer("GetBuyerPurchases")["purchases"] == []


def buyer_ops(item_id: int, seller_id: int) -> dict[str, dict]:
    """Every buyer op with valid values (for an item and a seller that exist)."""
    return {"Logout": {}, "SearchItemsForSale": {"category": 1}, "GetItem": {"item_id": item_id},
            "AddItemToCart": {"item_id": item_id, "quantity": 1},
            "RemoveItemFromCart": {"item_id": item_id, "quantity": 1}, "SaveCart": {},
            "ClearCart": {}, "DisplayCart": {}, "MakePurchase": CARD,
            "ProvideFeedback": {"item_id": item_id, "vote": "up"},
            "GetSellerRating": {"seller_id": seller_id}, "GetBuyerPurchases": {}}


def test_every_buyer_op_needs_a_live_session(market, seller, buyer):
    anonymous = market.buyer()
    for op, args in buyer_ops(listing(seller), seller.seller_id).items():
        anonymous.session = None
        assert anonymous.error(op, **args) == "invalid_session", op
        anonymous.session = "x" * 43
        assert anonymous.error(op, **args) == "invalid_session", op
        assert buyer.error(op, **args, extra=1) == "bad_request", op


def test_seller_ops_are_unknown_at_the_buyer_frontend(buyer):
    for op in ["RegisterItemForSale", "ChangeItemPrice", "UpdateUnitsForSale",
               "DisplayItemsForSale", "CheckSession", "ReserveUnits"]:
        assert buyer.error(op) == "unknown_op", op
