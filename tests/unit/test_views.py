"""market/views.py: money and aligned tables."""
from __future__ import annotations

from decimal import Decimal

import pytest

from market.cli.views import items_table, money, rating_text, table


@pytest.mark.parametrize("amount, text", [(17.5, "$17.50"), (0.01, "$0.01"), (45, "$45.00"),
                                          (1234567.891, "$1,234,567.89"),
                                          (Decimal("17.5"), "$17.50"),
                                          (Decimal("10000000000000.01"), "$10,000,000,000,000.01"),
                                          (Decimal("1234567890123456789.99"),
                                           "$1,234,567,890,123,456,789.99")])
def test_money(amount, text):
    assert money(amount) == text


def test_table_right_aligns_numbers_and_money_left_aligns_text():
    text = table([[1, "lamp", "$17.50"], [12, "desk chair", "$5.00"]], ["ID", "Name", "Price"])
    assert text.splitlines() == ["ID  Name         Price",
                                 " 1  lamp        $17.50",
                                 "12  desk chair   $5.00"]


def test_table_strips_trailing_spaces_and_ignores_empty_cells_for_alignment():
    text = table([["a", ""], ["bbb", "7"]], ["Name", "N"])
    assert text.splitlines() == ["Name  N", "a", "bbb   7"]


def test_table_of_nothing_is_empty():
    assert table([]) == ""
    assert table([], ["A", "B"]) == "A  B"


def test_items_table_matches_the_readme_listing():
    items = [{"item_id": 1, "name": "lamp", "category": 3, "condition": "new", "price": 17.5,
              "quantity": 3, "keywords": ["desk", "light"], "thumbs_up": 1, "thumbs_down": 0,
              "seller_id": 1}]
    assert items_table(items, with_seller=False).splitlines() == [
        "ID  Name  Cat  Cond   Price  Units  Keywords    Votes +/-",
        " 1  lamp    3  new   $17.50      3  desk,light      +1/-0"]


def test_rating_text():
    assert rating_text({"name": "alice", "seller_id": 1, "thumbs_up": 1, "thumbs_down": 0,
                        "items_sold": 2}) == (
        "Seller alice (id 1): 1 thumbs up, 0 thumbs down, 2 units sold.")
