"""Paged lists (contract section 8): opaque cursors and pages bounded in count and bytes.

A list that grows with use (a seller's items, a buyer's purchases) is read a
page at a time: at most ``limit`` entries and at most ``PAGE_BYTES`` of JSON,
but never none while more remain. ``next`` is a cursor naming the list (kind
and owner) and the position after the last entry shown; a cursor of another
list, or one that does not parse, is ``bad_request``. Entries are only ever
added at the end, so paging visits each once, in order, while the list grows.
"""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from market.config import MAX_LINE, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX
from protocol import ApiError, Int, Omittable, Str

# Bytes of entries in one page. A page may pass it by its last entry, at most
# the largest single entry (a purchase of 1,000 lines, under 300 KiB), so a
# reply, envelope included, stays under MAX_LINE.
PAGE_BYTES = MAX_LINE // 2

PAGE_LIMIT = Omittable(Int(1, PAGE_LIMIT_MAX), PAGE_LIMIT_DEFAULT)
CURSOR = Omittable(Str(1, 100), None)

Entry = TypeVar("Entry")


def page_args(limit: int, after: str | None) -> dict:
    """A page request's fields as a frontend passes them on (no ``after`` for the first)."""
    return {"limit": limit} if after is None else {"limit": limit, "after": after}


def make_cursor(kind: str, owner: int, position: int) -> str:
    """The opaque ``next`` of a page of list ``kind`` of ``owner``, ending at ``position``."""
    return f"{kind}.{owner}.{position}"


def read_cursor(cursor: str | None, kind: str, owner: int) -> int:
    """The position a cursor of list ``kind`` of ``owner`` names (0 without a cursor)."""
    if cursor is None:
        return 0
    cursor_kind, _, rest = cursor.partition(".")
    cursor_owner, _, position = rest.partition(".")
    if (cursor_kind != kind or cursor_owner != str(owner) or not position.isascii()
            or not position.isdigit() or len(position) > 18):
        raise ApiError("bad_request", "'after' must be the 'next' of an earlier page of this list.")
    return int(position)


def page(entries: Sequence[Entry], start: int, limit: int, size: Callable[[Entry], int],
         budget: int = PAGE_BYTES) -> list[Entry]:
    """Entries from index ``start``: at most ``limit``, and only as many as fit in
    ``budget`` bytes (``size`` of each), but at least one while any remain."""
    taken: list[Entry] = []
    used = 0
    for entry in entries[start:start + limit]:
        used += size(entry) + 1  # the comma
        if taken and used > budget:
            break
        taken.append(entry)
    return taken
