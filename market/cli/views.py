"""How the CLIs show things to a person: money, aligned tables, items, ratings.

Text from the market (names, keywords) is shown through ``shown``: a bidi control,
an invisible character or a control character is written as its escape (``\\u202e``),
so a name stored before section 15 cannot pass for another. Tables are aligned by
``display_width`` (a wide character takes two columns, a combining mark none).
"""
from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

from market.fields import HIDDEN

# What ``shown`` escapes: C0, DEL, C1 (they move the cursor or end the line) and HIDDEN.
_ESCAPED = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(sorted(HIDDEN)) + "]")
_ZERO_WIDTH_CATEGORIES = frozenset({"Mn", "Me", "Cf"})  # marks, format characters


def shown(text: str) -> str:
    """``text`` with every control, bidi control and invisible character written as a
    Python-style escape: 'bob\\u200b', '\\u202enimda'."""
    return _ESCAPED.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def display_width(text: str) -> int:
    """The columns ``text`` takes in a terminal: an East Asian wide or fullwidth character
    takes two, a combining mark or format character none, any other one."""
    if text.isascii():
        return len(text)
    return sum(_char_width(char) for char in text)


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in _ZERO_WIDTH_CATEGORIES:
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def money(dollars: float | Decimal) -> str:
    return f"${dollars:,.2f}"


def table(rows: list[list[Any]], headers: list[str] | None = None) -> str:
    """Rows as aligned columns (by display width, each cell ``shown``); columns of
    numbers and money are right-aligned."""
    body = [[shown(str(cell)) for cell in row] for row in rows]
    lines = ([list(headers)] if headers else []) + body
    if not lines:
        return ""
    right = [all(_looks_numeric(row[i]) for row in body if row[i])
             for i in range(len(lines[0]))]
    cell_widths = [[display_width(cell) for cell in line] for line in lines]
    widths = [max(line[i] for line in cell_widths) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(_pad(cell, width - used, align)
                  for cell, used, width, align in zip(line, used_widths, widths, right)).rstrip()
        for line, used_widths in zip(lines, cell_widths))


def _pad(cell: str, spaces: int, right: bool) -> str:
    return " " * spaces + cell if right else cell + " " * spaces


def _looks_numeric(cell: str) -> bool:
    return all(c in "0123456789$.,+-/" for c in cell)


def items_table(items: list[dict], with_seller: bool = True) -> str:
    headers = ["ID", "Name", "Cat", "Cond", "Price", "Units", "Keywords", "Votes +/-"]
    rows = [[item["item_id"], item["name"], item["category"], item["condition"],
             money(item["price"]), item["quantity"], ",".join(item["keywords"]),
             f"+{item['thumbs_up']}/-{item['thumbs_down']}"] for item in items]
    if with_seller:
        headers.append("Seller")
        for row, item in zip(rows, items):
            row.append(item["seller_id"])
    return table(rows, headers)


def rating_text(result: dict) -> str:
    """A ``GetSellerRating`` result as one line."""
    return (f"Seller {shown(result['name'])} (id {result['seller_id']}): "
            f"{result['thumbs_up']} thumbs up, {result['thumbs_down']} thumbs down, "
            f"{result['items_sold']} units sold.")
