"""How the CLIs show things to a person: money, aligned tables, items, ratings."""
from __future__ import annotations

from decimal import Decimal
from typing import Any


def money(dollars: float | Decimal) -> str:
    return f"${dollars:,.2f}"


def table(rows: list[list[Any]], headers: list[str] | None = None) -> str:
    """Rows as aligned columns; columns of numbers and money are right-aligned."""
    body = [[str(cell) for cell in row] for row in rows]
    lines = ([list(headers)] if headers else []) + body
    if not lines:
        return ""
    right = [all(_looks_numeric(row[i]) for row in body if row[i])
             for i in range(len(lines[0]))]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.rjust(width) if align else cell.ljust(width)
                  for cell, width, align in zip(line, widths, right)).rstrip()
        for line in lines)


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
    return (f"Seller {result['name']} (id {result['seller_id']}): "
            f"{result['thumbs_up']} thumbs up, {result['thumbs_down']} thumbs down, "
            f"{result['items_sold']} units sold.")
