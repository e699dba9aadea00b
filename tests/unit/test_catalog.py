"""market.product.catalog: items by id, category and seller; their cached reply JSON; seller pages."""
from __future__ import annotations

import json
import random

import pytest

from market.product.catalog import Catalog, Item, item_result, items_result
from protocol import ApiError


def item(item_id: int, seller_id: int = 1, category: int = 0, price: int = 1999) -> Item:
    return Item(item_id, f"i{item_id}", category, ["Desk"], "used", price, 4, seller_id)


def test_the_reply_shows_dollars_and_follows_every_change():
    desk = item(3)
    assert json.loads(desk.json()) == {
        "item_id": 3, "name": "i3", "category": 0, "keywords": ["Desk"], "condition": "used",
        "price": 19.99, "quantity": 4, "seller_id": 1, "thumbs_up": 0, "thumbs_down": 0}
    assert json.loads(desk.cart_json()) == {"item_id": 3, "name": "i3", "price_cents": 1999,
                                            "quantity": 4}
    desk.price, desk.quantity, desk.thumbs_up = 250, 1, 2
    assert json.loads(desk.json())["price"] == 2.5
    assert json.loads(desk.json())["thumbs_up"] == 2
    assert json.loads(desk.cart_json())["quantity"] == 1
    assert json.loads(item_result(desk).json) == {"item": json.loads(desk.json())}
    assert json.loads(items_result([desk, item(4)]).json)["items"][1]["item_id"] == 4


def test_raw_is_the_fields_and_makes_the_item_again():
    desk = item(3)
    desk.json()
    assert Item(**desk.raw()) == desk
    assert "_json" not in desk.raw()


def test_get_checks_existence_and_owner():
    catalog = Catalog()
    catalog.add(item(1, seller_id=5))
    assert catalog.get(1).item_id == 1 and catalog.get(1, 5).item_id == 1
    with pytest.raises(ApiError) as caught:
        catalog.get(2)
    assert caught.value.code == "not_found"
    with pytest.raises(ApiError) as caught:
        catalog.get(1, 6)
    assert caught.value.code == "forbidden"


def test_ids_go_on_past_every_item():
    catalog = Catalog(first_id=10)
    assert catalog.next_id == 10
    catalog.add(item(10))
    catalog.add(item(42))
    assert catalog.next_id == 43 and len(catalog) == 2


def test_existing_keeps_the_order_asked_and_skips_unknown_ids():
    catalog = Catalog()
    for item_id in (1, 2, 3):
        catalog.add(item(item_id))
    assert [i.item_id for i in catalog.existing([3, 9, 1, 3])] == [3, 1, 3]


def test_seller_pages_visit_each_item_once_in_id_order():
    rng = random.Random(5)
    catalog = Catalog()
    for item_id in range(1, 301):
        catalog.add(item(item_id, seller_id=rng.randint(1, 3)))
    for seller_id in (1, 2, 3, 4):
        seen, after, more = [], 0, True
        while more:
            shown, more = catalog.seller_page(seller_id, after, 7)
            assert len(shown) <= 7 and (shown or not more)
            seen += [i.item_id for i in shown]
            after = shown[-1].item_id if shown else after
        assert seen == [i.item_id for i in catalog.all() if i.seller_id == seller_id]


def test_a_page_after_the_sellers_last_item_is_empty():
    catalog = Catalog()
    for item_id in range(1, 6):
        catalog.add(item(item_id))
    shown, more = catalog.seller_page(1, 0, 500)
    assert len(shown) == 5 and not more
    assert catalog.seller_page(1, 5, 500) == ([], False)
