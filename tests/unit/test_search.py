"""product_db.best_matches: the search's ranking, read from the keyword-set index."""
from __future__ import annotations

import itertools
import random

from product_db import Item, best_matches


def indexed(items: list[Item]) -> dict[tuple[str, ...], list[Item]]:
    """The index ProductDB keeps for one category: every keyword subset -> items by id."""
    index: dict[tuple[str, ...], list[Item]] = {}
    for item in sorted(items, key=lambda item: item.item_id):
        for size in range(1, len(item.keyword_set) + 1):
            for subset in itertools.combinations(sorted(item.keyword_set), size):
                index.setdefault(subset, []).append(item)
    return index


def item(item_id: int, *keywords: str, quantity: int = 1) -> Item:
    return Item(item_id, f"i{item_id}", 0, list(keywords), "new", 100, quantity, 1)


def ids(items: list[Item]) -> list[int]:
    return [entry.item_id for entry in items]


def full_sort(items: list[Item], words: set[str], limit: int) -> list[int]:
    """The contract's order, the slow way: most shared keywords, then item_id."""
    matching = [i for i in items if i.quantity > 0 and i.keyword_set & words]
    matching.sort(key=lambda i: (-len(i.keyword_set & words), i.item_id))
    return ids(matching[:limit])


def test_more_shared_keywords_first_then_by_id():
    items = [item(1, "a"), item(2, "a", "b", "c"), item(3, "a", "b"), item(4, "b")]
    assert ids(best_matches(indexed(items), {"a", "b", "c"}, 10)) == [2, 3, 1, 4]


def test_matching_ignores_case_and_skips_sold_out_items():
    items = [item(1, "Desk"), item(2, "desk", quantity=0), item(3, "DESK", "lamp")]
    assert ids(best_matches(indexed(items), {"desk", "lamp"}, 10)) == [3, 1]


def test_limit_cuts_inside_a_level_by_id():
    items = [item(i, "a") for i in (9, 4, 7)]
    assert ids(best_matches(indexed(items), {"a"}, 2)) == [4, 7]


def test_no_match_and_fewer_than_the_limit():
    items = [item(1, "a")]
    assert best_matches(indexed(items), {"z"}, 5) == []
    assert ids(best_matches(indexed(items), {"a", "z"}, 500)) == [1]


def test_many_items_agree_with_a_full_sort():
    rng = random.Random(7)
    words = "abcdefgh"
    items = [item(i, *rng.sample(words, rng.randint(1, 5)), quantity=rng.randint(0, 3))
             for i in range(1, 1501)]
    index = indexed(items)
    for _ in range(30):
        query = set(rng.sample(words, rng.randint(1, 5)))
        limit = rng.choice([1, 5, 20, 500])
        assert ids(best_matches(index, query, limit)) == full_sort(items, query, limit)
