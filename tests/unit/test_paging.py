"""market.paging: cursors name their list and position; pages are bounded in count and bytes."""
from __future__ import annotations

import pytest

from market.paging import PAGE_BYTES, make_cursor, page, page_args, read_cursor
from protocol import MAX_LINE, ApiError


def test_a_cursor_reads_back_its_position():
    assert read_cursor(make_cursor("items", 7, 12345), "items", 7) == 12345
    assert read_cursor(None, "items", 7) == 0


@pytest.mark.parametrize("cursor", [
    make_cursor("items", 8, 1),  # another owner's
    make_cursor("purchases", 7, 1),  # another list's
    "", "items", "items.7", "items.7.", "items.7.x", "items.7.-1", "items.7.٣",
    "items.7." + "9" * 19, " items.7.1", "ITEMS.7.1",
])
def test_a_foreign_or_malformed_cursor_is_a_bad_request(cursor):
    with pytest.raises(ApiError) as refused:
        read_cursor(cursor, "items", 7)
    assert refused.value.code == "bad_request"


def test_a_page_holds_at_most_limit_entries_from_start():
    assert page(list(range(10)), 3, 4, lambda _: 1) == [3, 4, 5, 6]
    assert page(list(range(10)), 8, 4, lambda _: 1) == [8, 9]
    assert page(list(range(10)), 10, 4, lambda _: 1) == []


def test_a_page_stops_at_its_byte_budget_but_is_never_empty():
    sizes = [40, 40, 40]
    assert page(sizes, 0, 100, lambda size: size, budget=100) == [40, 40]
    assert page([500], 0, 100, lambda size: size, budget=100) == [500]  # one too big: alone


def test_the_page_budget_leaves_room_for_the_largest_entry_under_the_line_limit():
    largest_purchase = 300 * 1024  # 1,000 lines of at most ~300 bytes
    assert PAGE_BYTES + largest_purchase + 1024 < MAX_LINE


def test_page_args_leave_out_a_missing_cursor():
    assert page_args(100, None) == {"limit": 100}
    assert page_args(5, "items.1.2") == {"limit": 5, "after": "items.1.2"}
