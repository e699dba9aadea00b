"""market/commands.py: reading prices, numbers and keywords, Arg.parse's checks in the
prompt's words, Tab completion and the history line (no connections)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from market import fields
from market.cli.commands import (
    MORE,
    Arg,
    Command,
    CommandSet,
    read_price,
    read_whole,
    read_words,
)
from market.errors import CliError

PRICE_ARG = Arg("price", "Price in dollars, e.g. 17.50", fields.PRICE, read_price)
QUANTITY_ARG = Arg("quantity", "Units for sale", fields.QUANTITY, read_whole)
KEYWORDS_ARG = Arg("keywords", "Keywords, up to 5", fields.KEYWORDS, read_words)
LIMIT_ARG = Arg("limit", "At most this many items (1-500)", fields.SEARCH_LIMIT, read_whole,
                label="The limit")
ITEM_ARG = Arg("item_id", "Item id", fields.ITEM_ID, read_whole)


@pytest.mark.parametrize("text, value", [("17.50", "17.50"), ("$17.50", "17.50"),
                                         (" 17.5 ", "17.5"), ("3", "3"), ("$0.01", "0.01"),
                                         ("$1,000.00", "1000.00"), ("1,000.00", "1000.00"),
                                         ("1000", "1000"), ("1,000,000", "1000000")])
def test_read_price_reads_what_the_cli_prints(text, value):
    assert read_price(text) == Decimal(value) and str(read_price(text)) == value


@pytest.mark.parametrize("text", ["17,50", "abc", "", "$", "1 7", "1_000", "1e2", "inf", "nan",
                                  "-1", "1,00", "1,0000.00", ",100", "١٢"])
def test_read_price_refuses_what_is_not_a_plain_amount(text):
    with pytest.raises(ValueError):
        read_price(text)


@pytest.mark.parametrize("text, value", [("5", 5), (" 12 ", 12), ("1,000", 1000)])
def test_read_whole(text, value):
    assert read_whole(text) == value


@pytest.mark.parametrize("text", ["1_000", "1e3", "1.0", "-1", "+1", "", "1,00", "٣"])
def test_read_whole_refuses_what_is_not_a_plain_whole_number(text):
    with pytest.raises(ValueError):
        read_whole(text)


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


@pytest.mark.parametrize("text", ["0", "1000000.01", "0.001", "abc", "17,50", "1_000", "1e2",
                                  "inf", "nan", "Infinity"])
def test_parse_turns_a_bad_price_into_one_sentence_in_the_prompts_words(text):
    with pytest.raises(CliError) as info:
        PRICE_ARG.parse(text)
    assert str(info.value) == ("Price in dollars must be a number above 0 and at most 1,000,000 "
                               "with at most two decimals (like 17.50 or $1,000.00).")


@pytest.mark.parametrize("text", ["0", "x", "1.5", "1000001", "1_000", "1e3"])
def test_parse_turns_a_bad_whole_number_into_the_prompts_words(text):
    with pytest.raises(CliError, match="^Units for sale must be a whole number from 1 to "
                                       "1,000,000.$"):
        QUANTITY_ARG.parse(text)


def test_an_id_without_a_useful_upper_limit_shows_none():
    with pytest.raises(CliError, match="^Item id must be a whole number from 1 up.$"):
        ITEM_ARG.parse("0")
    with pytest.raises(CliError, match="^The limit must be a whole number from 1 to 500.$"):
        LIMIT_ARG.parse("501")


def test_more_is_a_literal_word():
    assert MORE.usage == "[more]" and MORE.parse("MORE") == "more"
    with pytest.raises(CliError) as info:
        MORE.parse("less")
    assert "more" in str(info.value) and "one of" not in str(info.value)


def test_quotes_in_a_message_are_kept():
    card = Arg("expiry", "Expiry (MM/YY)", fields.Str(1, 5),
               refusal="The card would be rejected: the expiry's month must be 01 to 12.")
    with pytest.raises(CliError, match="expiry's month"):
        card.parse("123456")


def test_parse_names_the_bad_keyword():
    with pytest.raises(CliError, match=r'^Keywords must be keywords of 1 to 8 .*"toolongword"'):
        KEYWORDS_ARG.parse("desk,toolongword")
    with pytest.raises(CliError, match="at most 5 keywords"):
        KEYWORDS_ARG.parse("a,b,c,d,e,f")


def test_usage_brackets_optional_values():
    assert PRICE_ARG.usage == "PRICE" and LIMIT_ARG.usage == "[LIMIT]"


VOTE_ARG = Arg("vote", "Vote (up or down)", fields.VOTE, str.lower, metavar="up|down")
PASSWORD_ARG = Arg("password", "Password", fields.PASSWORD, secret=True)
COMMANDS = CommandSet([
    Command("login", "Login", "log in", (Arg("username", "Username", fields.USERNAME),
                                         PASSWORD_ARG)),
    Command("rate", "ProvideFeedback", "vote", (ITEM_ARG, VOTE_ARG)),
    Command("list", "DisplayItemsForSale", "list", (MORE,), paged=True),
])


@pytest.mark.parametrize("before, text, words", [
    ([], "ra", ["rate"]), ([], "Pro", ["ProvideFeedback"]), ([], "log", ["login"]),
    ([], "q", ["quit"]), (["rate", "7"], "", ["up", "down"]), (["rate", "7"], "d", ["down"]),
    (["ProvideFeedback", "7"], "U", ["up"]), (["list"], "", ["more"]), (["rate"], "", []),
    (["help"], "Dis", ["DisplayItemsForSale"]), (["nosuch"], "", []),
    (["rate", "7", "up"], "", [])])
def test_tab_completes_names_op_names_and_the_words_a_value_may_be(before, text, words):
    assert COMMANDS.completions(before, text) == words


@pytest.mark.parametrize("line, kept", [("login bob hunter2", "login bob"),
                                        ("LOGIN bob 'two words'", "LOGIN bob"),
                                        ("1 bob hunter2", "1 bob"),
                                        ("login bob", "login bob"), ("rate 7 up", "rate 7 up"),
                                        ('login "bob', 'login "bob')])
def test_the_history_never_keeps_a_password(line, kept):
    assert COMMANDS.for_history(line) == kept
