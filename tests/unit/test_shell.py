"""market/shell.py: reading prices and keywords, Arg.parse's checks (no connections)."""
from __future__ import annotations

import decimal
from decimal import Decimal

import pytest

from market import fields
from market.shell import Arg, CliError, read_price, read_words

PRICE_ARG = Arg("price", "Price", fields.PRICE, read_price)
QUANTITY_ARG = Arg("quantity", "Units", fields.QUANTITY, int)
KEYWORDS_ARG = Arg("keywords", "Keywords", fields.KEYWORDS, read_words)
LIMIT_ARG = Arg("limit", "Limit", fields.SEARCH_LIMIT, int)


@pytest.mark.parametrize("text, value", [("17.50", "17.50"), ("$17.50", "17.50"),
                                         (" 17.5 ", "17.5"), ("3", "3"), ("$0.01", "0.01")])
def test_read_price(text, value):
    assert read_price(text) == Decimal(value) and str(read_price(text)) == value


@pytest.mark.parametrize("text", ["17,50", "abc", "", "$", "1 7"])
def test_read_price_refuses_what_is_not_a_plain_number(text):
    with pytest.raises(decimal.InvalidOperation):
        read_price(text)


@pytest.mark.parametrize("text, words", [("desk,light", ["desk", "light"]),
                                         ("desk light", ["desk", "light"]),
                                         (" desk, ,light,,", ["desk", "light"]),
                                         ("", []), (",", [])])
def test_read_words(text, words):
    assert read_words(text) == words


def test_parse_returns_the_value_to_send():
    assert PRICE_ARG.parse("$17.50") == 17.5
    assert QUANTITY_ARG.parse("5") == 5
    assert KEYWORDS_ARG.parse("desk,Desk,light") == ["desk", "Desk", "light"]


@pytest.mark.parametrize("text", ["0", "1000000.01", "0.001", "abc", "17,50"])
def test_parse_turns_a_bad_price_into_one_sentence(text):
    with pytest.raises(CliError) as info:
        PRICE_ARG.parse(text)
    assert str(info.value) == ("PRICE must be a number above 0 and at most 1000000 "
                               "with at most two decimal places.")


@pytest.mark.parametrize("text", ["0", "x", "1.5", "1000001"])
def test_parse_turns_a_bad_integer_into_cli_error(text):
    with pytest.raises(CliError, match="^QUANTITY must be an integer from 1 to 1000000.$"):
        QUANTITY_ARG.parse(text)


def test_parse_names_the_bad_keyword():
    with pytest.raises(CliError, match=r'^KEYWORDS must be keywords of 1 to 8 .*"toolongword"'):
        KEYWORDS_ARG.parse("desk,toolongword")
    with pytest.raises(CliError, match="at most 5 keywords"):
        KEYWORDS_ARG.parse("a,b,c,d,e,f")


def test_usage_brackets_optional_values():
    assert PRICE_ARG.usage == "PRICE" and LIMIT_ARG.usage == "[LIMIT]"
