"""Search's ranking (``KeywordIndex.best_matches``, through ``Catalog``) against a slow,
obviously correct oracle: filter every item, sort by the contract's order."""
from __future__ import annotations

import random

from market.product.catalog import Catalog, Item, KeywordIndex

WORDS = ["a", "b", "c", "D", "e", "F", "g", "h"]


def item(item_id: int, *keywords: str, quantity: int = 1, category: int = 0) -> Item:
    return Item(item_id, f"i{item_id}", category, list(keywords), "new", 100, quantity, 1)


def indexed(items: list[Item]) -> KeywordIndex:
    index = KeywordIndex()
    for entry in sorted(items, key=lambda entry: entry.item_id):
        index.add(entry)
    return index


def ids(items: list[Item]) -> list[int]:
    return [entry.item_id for entry in items]


def oracle(items: list[Item], category: int, query: list[str], limit: int) -> list[int]:
    """The contract's order, the slow way: in stock, of the category, sharing at least one
    keyword (any case); most shared keywords first, then item_id."""
    words = {word.lower() for word in query}

    def shared(entry: Item) -> int:
        return len({word.lower() for word in entry.keywords} & words)

    matching = [entry for entry in items
                if entry.category == category and entry.quantity > 0 and shared(entry)]
    matching.sort(key=lambda entry: (-shared(entry), entry.item_id))
    return ids(matching[:limit])


def random_items(rng: random.Random, count: int, categories: int = 1) -> list[Item]:
    return [item(i, *rng.sample(WORDS, rng.randint(0, 5)), quantity=rng.randint(0, 3),
                 category=rng.randrange(categories))
            for i in range(1, count + 1)]


def test_more_shared_keywords_first_then_by_id():
    items = [item(1, "a"), item(2, "a", "b", "c"), item(3, "a", "b"), item(4, "b")]
    assert ids(indexed(items).best_matches({"a", "b", "c"}, 10)) == [2, 3, 1, 4]


def test_matching_ignores_case_and_skips_sold_out_items():
    items = [item(1, "Desk"), item(2, "desk", quantity=0), item(3, "DESK", "lamp")]
    assert ids(indexed(items).best_matches({"desk", "lamp"}, 10)) == [3, 1]


def test_limit_cuts_inside_a_level_by_id():
    assert ids(indexed([item(i, "a") for i in (4, 7, 9)]).best_matches({"a"}, 2)) == [4, 7]


def test_no_match_and_fewer_than_the_limit():
    index = indexed([item(1, "a")])
    assert index.best_matches({"z"}, 5) == []
    assert ids(index.best_matches({"a", "z"}, 500)) == [1]


def test_random_catalog_agrees_with_the_oracle():
    rng = random.Random(7)
    items = random_items(rng, 1500, categories=3)
    catalog = Catalog()
    for entry in items:
        catalog.add(entry)
    for _ in range(60):
        category = rng.randrange(4)  # 3 has no items
        query = rng.sample(WORDS + ["zz"], rng.randint(1, 5))
        limit = rng.choice([1, 5, 20, 500])
        found = catalog.best_matches(category, {word.lower() for word in query}, limit)
        assert ids(found) == oracle(items, category, query, limit), (category, query, limit)


def test_units_changed_after_indexing_are_seen():
    """The index holds items, not copies: selling out or restocking shows at once."""
    rng = random.Random(11)
    items = random_items(rng, 400)
    index = indexed(items)
    for _ in range(30):
        for entry in rng.sample(items, 40):
            entry.quantity = rng.randint(0, 2)
        query = rng.sample(WORDS, rng.randint(1, 4))
        assert ids(index.best_matches({w.lower() for w in query}, 50)) == \
            oracle(items, 0, query, 50)


def test_in_stock_lists_a_category_by_id():
    rng = random.Random(3)
    items = random_items(rng, 300, categories=2)
    catalog = Catalog()
    for entry in items:
        catalog.add(entry)
    for category in (0, 1, 2):
        for limit in (1, 10, 500):
            expected = [entry.item_id for entry in items
                        if entry.category == category and entry.quantity > 0][:limit]
            assert ids(catalog.in_stock(category, limit)) == expected
