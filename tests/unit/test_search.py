"""product_db.best_matches: the search's ranking."""
from __future__ import annotations

from product_db import best_matches


def test_more_shared_keywords_first():
    assert best_matches({1: 1, 2: 3, 3: 2}, 10) == [2, 3, 1]


def test_ties_go_by_id():
    assert best_matches({9: 2, 4: 2, 7: 2, 1: 1}, 10) == [4, 7, 9, 1]


def test_limit_keeps_the_best():
    shared = {i: i % 3 for i in range(1, 21)}  # counts 0, 1, 2 spread over ids
    assert best_matches(shared, 4) == [2, 5, 8, 11]
    assert best_matches(shared, 1) == [2]


def test_limit_cuts_inside_a_tie_by_id():
    assert best_matches({5: 1, 3: 1, 8: 1}, 2) == [3, 5]


def test_empty_and_fewer_than_the_limit():
    assert best_matches({}, 5) == []
    assert best_matches({3: 1}, 500) == [3]


def test_many_items_agree_with_a_full_sort():
    shared = {i: (i * 7919) % 6 for i in range(1, 3001)}
    expected = sorted(shared, key=lambda i: (-shared[i], i))[:100]
    assert best_matches(shared, 100) == expected
