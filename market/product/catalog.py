"""The items: ``Item``, the ``KeywordIndex`` of one category, and the ``Catalog`` (every
item by id, category, keyword set and seller) with the reads the frontends ask for.

The product database holds the catalog; each frontend holds a copy of it, kept current
by the database's change feed (``Catalog.put``, ``market.replication.feed``), and answers the same
reads from it with the same code. Prices are integer cents. An item's reply JSON (the
contract's form, price in dollars) is encoded once per change and spliced into every
reply that shows it. Not thread-safe: its holder's lock is held around all of it.
"""
from __future__ import annotations

import bisect
import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from market.fields import dollars
from market.paging import make_cursor, page, read_cursor
from protocol import ApiError, RawResult, encode_value


@dataclass
class Item:
    item_id: int
    name: str
    category: int
    keywords: list[str]
    condition: str
    price: int  # cents
    quantity: int  # units for sale, >= 0
    seller_id: int
    thumbs_up: int = 0
    thumbs_down: int = 0

    def __setattr__(self, name: str, value: Any) -> None:
        """Any change to a field drops the cached JSON."""
        object.__setattr__(self, name, value)
        self._drop_json()

    def _drop_json(self) -> None:
        object.__setattr__(self, "_json", None)
        object.__setattr__(self, "_cart_json", None)

    def json(self) -> bytes:
        """The item as every client reply shows it (price in dollars), encoded once per change."""
        if self._json is None:
            object.__setattr__(self, "_json", encode_value({
                "item_id": self.item_id, "name": self.name, "category": self.category,
                "keywords": self.keywords, "condition": self.condition,
                "price": dollars(self.price), "quantity": self.quantity,
                "seller_id": self.seller_id, "thumbs_up": self.thumbs_up,
                "thumbs_down": self.thumbs_down}))
        return self._json

    def cart_line(self) -> dict:
        """What a cart line needs of the item, price in cents."""
        return {"item_id": self.item_id, "name": self.name, "price_cents": self.price,
                "quantity": self.quantity}

    def cart_json(self) -> bytes:
        """``cart_line``, encoded once per change."""
        if self._cart_json is None:
            object.__setattr__(self, "_cart_json", encode_value(self.cart_line()))
        return self._cart_json

    @property
    def keyword_set(self) -> frozenset[str]:
        """The keywords as search matches them: lower case (made once: keywords never change)."""
        found = self.__dict__.get("_keyword_set")
        if found is None:
            found = frozenset(word.lower() for word in self.keywords)
            object.__setattr__(self, "_keyword_set", found)
        return found

    def raw(self) -> dict:
        """The fields, for snapshots and the feed's new items."""
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}

    def state(self) -> dict:
        """What may change of the item (``MUTABLE``), and its id: the feed's changes."""
        return {"item_id": self.item_id, **{name: getattr(self, name) for name in MUTABLE}}

    def take_state(self, state: dict) -> None:
        """Set what ``state`` says of what may change (one cache drop for all of it)."""
        for name in MUTABLE:
            object.__setattr__(self, name, state[name])
        self._drop_json()


MUTABLE = ("price", "quantity", "thumbs_up", "thumbs_down")  # an item's fields that change


def item_result(item: Item) -> RawResult:
    return RawResult(b'{"item":' + item.json() + b"}")


def items_result(items: list[Item]) -> RawResult:
    return RawResult(b'{"items":[' + b",".join([item.json() for item in items]) + b"]}")


def _page_after(items: list[Item], after_id: int, limit: int) -> tuple[list[Item], bool]:
    """One page (``market.paging.page``) of ``items``, in id order, with ids above
    ``after_id``, and whether more follow."""
    start = bisect.bisect_right(items, after_id, key=lambda item: item.item_id)
    shown = page(items, start, limit, lambda item: len(item.json()))
    return shown, start + len(shown) < len(items)


class KeywordIndex:
    """The items of one category by keyword set, for search.

    Invariant: for every non-empty subset of each item's lower-case keywords
    (sorted; at most 31 per item), ``_lists[subset]`` holds that item, and the
    lists are in item_id order (items are added in id order). So a search reads
    only about the items it returns.
    """

    def __init__(self) -> None:
        self._lists: dict[tuple[str, ...], list[Item]] = {}

    def add(self, item: Item) -> None:
        """Index an item whose id is above every indexed one."""
        words = sorted(item.keyword_set)
        for size in range(1, len(words) + 1):
            for subset in itertools.combinations(words, size):
                self._lists.setdefault(subset, []).append(item)

    def best_matches(self, words: set[str], limit: int) -> list[Item]:
        """The ``limit`` items in stock sharing the most of ``words`` (lower case), ties by
        item_id.

        Level by level, from all of ``words`` down to one: the items sharing exactly
        that many are those of the lists of that many words, merged by id, less those
        sharing more (taken at a higher level). It stops at ``limit``, so it reads
        about ``limit`` items per level, not every match.
        """
        found: list[Item] = []
        ordered = sorted(words)
        for size in range(len(ordered), 0, -1):
            lists = [self._lists.get(subset, ())
                     for subset in itertools.combinations(ordered, size)]
            for item in heapq.merge(*lists, key=lambda item: item.item_id):
                if item.quantity > 0 and len(item.keyword_set & words) == size:
                    found.append(item)
                    if len(found) == limit:
                        return found
        return found


class Catalog:
    """Every item, by id, by category, by keyword set (per category) and by seller.

    Invariants: items are only added, never removed, with ids rising;
    ``_by_category``, ``_indexes`` and ``_by_seller`` list exactly the items of
    ``_items``, each list in item_id order; ``next_id`` is above every id.
    """

    def __init__(self, first_id: int = 1) -> None:
        self._items: dict[int, Item] = {}
        self._by_category: dict[int, list[Item]] = {}
        self._indexes: dict[int, KeywordIndex] = {}
        self._by_seller: dict[int, list[Item]] = {}
        self.next_id = first_id

    def __len__(self) -> int:
        return len(self._items)

    def put(self, entries: list[dict]) -> None:
        """Take items from the product database's feed: a new one whole (``Item.raw``), a
        known one's ``Item.state``."""
        for entry in entries:
            item = self._items.get(entry["item_id"])
            if item is None:
                self.add(Item(**entry))
            else:
                item.take_state(entry)

    def clear(self) -> None:
        """Forget every item (a copy about to take a new snapshot)."""
        self.__init__()

    def feed_page(self, after: int, limit: int) -> tuple[list[dict], int | None]:
        """Up to ``limit`` items with ids above ``after``, in id order, as the feed sends
        them, and the last one's id if more follow."""
        shown, more = _page_after(self.all(), after, limit)  # all(): in id order
        return [item.raw() for item in shown], shown[-1].item_id if more else None

    def add(self, item: Item) -> None:
        """Store a new item, its id above every stored one, and index it."""
        self.next_id = max(self.next_id, item.item_id + 1)
        self._items[item.item_id] = item
        self._by_category.setdefault(item.category, []).append(item)
        self._indexes.setdefault(item.category, KeywordIndex()).add(item)
        self._by_seller.setdefault(item.seller_id, []).append(item)

    def __getitem__(self, item_id: int) -> Item:
        """The item (``KeyError`` if there is none: for replay, where that is damage)."""
        return self._items[item_id]

    def get(self, item_id: int, seller_id: int | None = None) -> Item:
        """The item, checked to belong to ``seller_id`` when given."""
        item = self._items.get(item_id)
        if item is None:
            raise ApiError("not_found", f"There is no item {item_id}.")
        if seller_id is not None and item.seller_id != seller_id:
            raise ApiError("forbidden", f"Item {item_id} belongs to another seller.")
        return item

    def existing(self, item_ids: list[int]) -> list[Item]:
        """The items that exist among ``item_ids``, in that order."""
        return [self._items[i] for i in item_ids if i in self._items]

    def all(self) -> list[Item]:
        return list(self._items.values())

    def in_stock(self, category: int, limit: int) -> list[Item]:
        """The first ``limit`` items of ``category`` with units, by item_id."""
        found = []
        for item in self._by_category.get(category, ()):
            if item.quantity > 0:
                found.append(item)
                if len(found) == limit:
                    break
        return found

    def best_matches(self, category: int, words: set[str], limit: int) -> list[Item]:
        """See ``KeywordIndex.best_matches``."""
        index = self._indexes.get(category)
        return index.best_matches(words, limit) if index else []

    def seller_page(self, seller_id: int, after_id: int, limit: int) -> tuple[list[Item], bool]:
        """One page of the seller's items with ids above ``after_id``, in id order (see
        ``market.paging.page``), and whether more follow."""
        return _page_after(self._by_seller.get(seller_id, []), after_id, limit)

    # -- the reads, as the product database and a frontend's copy answer them ---------------

    def search(self, category: int, keywords: list[str], limit: int) -> RawResult:
        """Items in stock of ``category``; with keywords, best keyword overlap first."""
        if not keywords:
            return items_result(self.in_stock(category, limit))
        return items_result(self.best_matches(category, {word.lower() for word in keywords},
                                              limit))

    def item(self, item_id: int) -> RawResult:
        return item_result(self.get(item_id))

    def seller_items(self, seller_id: int, limit: int, after: str | None) -> RawResult:
        """One page of the seller's items, by item_id; ``after`` is the last id shown."""
        shown, more = self.seller_page(seller_id, read_cursor(after, "items", seller_id), limit)
        return RawResult(items_result(shown).json[:-1] + b',"next":' + encode_value(
            make_cursor("items", seller_id, shown[-1].item_id) if more else None) + b"}")

    def cart_items(self, item_ids: list[int]) -> RawResult:
        """The items that exist among ``item_ids``, in that order, as cart lines need them."""
        return RawResult(b'{"items":[' + b",".join(
            [item.cart_json() for item in self.existing(item_ids)]) + b"]}")
