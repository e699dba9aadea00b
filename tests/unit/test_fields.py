"""market/fields.py: the contract's limits, money, card rules (and the validators they use)."""
from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from market import fields
from market.fields import ascii_digits, card_problem, dollars, luhn_ok
from protocol import ApiError, ExactDollars, decode, encode


def refused(check, value, name="f") -> str:
    with pytest.raises(ApiError) as info:
        check(name, value)
    assert info.value.code == "bad_request"
    return info.value.message


# -- Str ------------------------------------------------------------------------

def test_username_length_boundaries():
    assert fields.USERNAME("u", "a") == "a"
    assert fields.USERNAME("u", "a" * 32) == "a" * 32
    assert refused(fields.USERNAME, "", "u") == "'u' must be a string of 1 to 32 characters."
    refused(fields.USERNAME, "a" * 33)
    refused(fields.USERNAME, 5)


@pytest.mark.parametrize("char", ["\x00", "\n", "\x1f", "\x7f", "\x85", "\x9f"])
def test_names_refuse_control_characters(char):
    assert refused(fields.ITEM_NAME, f"a{char}b", "name") == \
        f"'name' must not contain U+{ord(char):04X} (a control character)."
    assert "without control characters" in refused(fields.LOGIN_USERNAME, f"a{char}b")


def test_names_allow_spaces_and_non_ascii():
    assert fields.ITEM_NAME("n", "desk lamp é\u00a0☃") == "desk lamp é\u00a0☃"


def test_password_allows_control_characters_up_to_128():
    assert fields.PASSWORD("p", "a\tb\x00" + "x" * 124) == "a\tb\x00" + "x" * 124
    refused(fields.PASSWORD, "x" * 129)


# -- Int, OneOf ---------------------------------------------------------------------

def test_category_bounds():
    assert fields.CATEGORY("c", 0) == 0 and fields.CATEGORY("c", 99) == 99
    assert refused(fields.CATEGORY, 100, "c") == "'c' must be an integer from 0 to 99."
    refused(fields.CATEGORY, -1)


@pytest.mark.parametrize("value", [True, False, 1.0, Decimal(1), "1", None])
def test_int_refuses_bools_floats_and_strings(value):
    refused(fields.QUANTITY, value)


def test_quantity_upper_bound():
    assert fields.QUANTITY("q", 1_000_000) == 1_000_000
    refused(fields.QUANTITY, 1_000_001)
    refused(fields.QUANTITY, 0)


@pytest.mark.parametrize("value", ["NEW", "New", " new", "", 1, ["new"], None])
def test_condition_is_exactly_new_or_used(value):
    assert refused(fields.CONDITION, value, "c") == "'c' must be one of 'new', 'used'."


def test_condition_accepts_its_choices():
    assert [fields.CONDITION("c", v) for v in ("new", "used")] == ["new", "used"]


# -- Price ------------------------------------------------------------------------

@pytest.mark.parametrize("value, cents", [(Decimal("0.01"), 1), (Decimal("17.5"), 1750),
                                          (Decimal("17.50"), 1750), (1, 100),
                                          (Decimal("1000000"), 100_000_000),
                                          (1_000_000, 100_000_000),
                                          (Decimal("999999.99"), 99_999_999),
                                          (Decimal("1E+2"), 10_000)])
def test_price_accepts_up_to_two_decimals_and_returns_cents(value, cents):
    assert fields.PRICE("price", value) == cents
    assert type(fields.PRICE("price", value)) is int


@pytest.mark.parametrize("value", [0, Decimal("0"), Decimal("0.00"), Decimal("-0.01"), -1,
                                   Decimal("1000000.01"), 1_000_001, Decimal("0.001"),
                                   Decimal("17.505"), Decimal("0.0100000000000000000000000000001"),
                                   Decimal("1e-30"), Decimal("NaN"), Decimal("sNaN"),
                                   Decimal("Infinity"), Decimal("1e999999"),
                                   17.5, "17.50", True, None, [1]])
def test_price_refuses_out_of_range_too_precise_and_non_numbers(value):
    assert refused(fields.PRICE, value, "price") == (
        "'price' must be a number above 0 and at most 1000000 with at most two decimal places.")


def test_price_of_a_decoded_request_is_exact():
    assert fields.PRICE("price", decode(b'{"p":0.29}')["p"]) == 29
    refused(fields.PRICE, decode(b'{"p":0.0100000000000000000000000000001}')["p"])


# -- Keywords ---------------------------------------------------------------------

def test_keywords_count_boundaries():
    assert fields.KEYWORDS("k", []) == []
    assert fields.KEYWORDS("k", list("abcde")) == list("abcde")
    assert refused(fields.KEYWORDS, list("abcdef"), "k") == "'k' must be a list of at most 5 keywords."
    refused(fields.KEYWORDS, "desk")


def test_keywords_length_and_whitespace():
    assert fields.KEYWORDS("k", ["12345678"]) == ["12345678"]
    assert refused(fields.KEYWORDS, ["ok", "123456789"], "k") == (
        "'k' must be keywords of 1 to 8 characters without spaces or control characters, "
        'and "123456789" is not one.')
    refused(fields.KEYWORDS, [""])
    assert '"a b" is not one' in refused(fields.KEYWORDS, ["a b"])
    assert "is not one" in refused(fields.KEYWORDS, ["a\u00a0b"])
    assert "3 is not one" in refused(fields.KEYWORDS, [3])


def test_keywords_drop_case_insensitive_duplicates_keeping_the_first_spelling():
    assert fields.KEYWORDS("k", ["Desk", "light", "DESK", "desk", "Light"]) == ["Desk", "light"]


# -- Hex, Omittable ----------------------------------------------------------------

def test_hex_decodes_exactly_its_size():
    assert fields.SALT("salt", "00ff" * 8) == bytes([0, 255]) * 8
    assert fields.SALT("salt", "AB" * 16) == b"\xab" * 16
    for bad in ("00" * 15, "00" * 17, "zz" * 16, 16, None):
        assert refused(fields.SALT, bad, "salt") == "'salt' must be 16 bytes as hex text."


@pytest.mark.parametrize("text", ["00" * 10 + " " * 12, "00 " * 10 + "00", "00\t" * 10 + "00"])
def test_hex_refuses_whitespace(text):
    assert len(text) == 32
    refused(fields.SALT, text)


def test_search_limit_defaults_to_100_and_is_bounded():
    assert fields.SEARCH_LIMIT.optional and fields.SEARCH_LIMIT.default == 100
    assert fields.SEARCH_LIMIT("limit", 500) == 500
    refused(fields.SEARCH_LIMIT, 501)
    refused(fields.SEARCH_LIMIT, 0)


# -- money ------------------------------------------------------------------------

@pytest.mark.parametrize("cents, text", [(1750, "17.5"), (1, "0.01"), (0, "0.0"),
                                         (-1750, "-17.5"), (29, "0.29"),
                                         (10 ** 15 - 1, "9999999999999.99")])
def test_dollars_below_the_limit_are_floats_that_print_exactly(cents, text):
    assert type(dollars(cents)) is float
    assert repr(dollars(cents)) == text


def test_dollars_whole_past_the_limit_are_ints():
    assert dollars(10 ** 15) == 10 ** 13 and type(dollars(10 ** 15)) is int
    assert dollars(-(10 ** 17)) == -(10 ** 15)


@pytest.mark.parametrize("cents, wire", [(10 ** 15 + 1, b"10000000000000.01"),
                                         (123456789012345678901, b"1234567890123456789.01"),
                                         (-(10 ** 15) - 5, b"-10000000000000.05")])
def test_dollars_non_whole_past_the_limit_encode_as_exact_text(cents, wire):
    amount = dollars(cents)
    assert isinstance(amount, ExactDollars)
    assert encode({"price": amount}) == b'{"price":' + wire + b"}\n"


# -- cards ------------------------------------------------------------------------

TODAY = datetime.date(2030, 5, 15)
GOOD = ("A Buyer", "4111111111111111", "12/99")
NAME_MSG = "the name on the card must be 1 to 64 characters"
NUMBER_MSG = "the card number must be 13 to 19 digits"
MONTH_MSG = "the expiry's month must be 01 to 12"
FORMAT_MSG = "the expiry must be MM/YY"


def problem(name=GOOD[0], number=GOOD[1], expiry=GOOD[2], today=TODAY) -> str:
    return card_problem(name, number, expiry, today)


def test_a_good_card_has_no_problem():
    assert problem() == ""


@pytest.mark.parametrize("name", ["", "x" * 65, "A\x00B", "A\nB", "\x1f"])
def test_card_name_length_and_control_characters(name):
    assert problem(name=name) == NAME_MSG


def test_card_name_boundaries_accepted():
    assert problem(name="x") == "" and problem(name="x" * 64) == ""


@pytest.mark.parametrize("number", ["411111111117", "41111111111111111115",
                                    "4111 1111 1111 1111", "", "4111-1111-1111-1111",
                                    "411111111111111²", "٤١١١١١١١١١١١١١١١",
                                    "４１１１１１１１１１１１１１１１"])
def test_card_number_length_and_non_ascii_digits(number):
    assert problem(number=number) == NUMBER_MSG


def test_card_numbers_refused_for_length_would_pass_luhn():
    assert luhn_ok("411111111117") and luhn_ok("41111111111111111115")


@pytest.mark.parametrize("number", ["4111111111119", "4111111111111111110"])
def test_card_number_of_13_and_19_digits_accepted(number):
    assert problem(number=number) == ""


def test_luhn():
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert problem(number="4111111111111112") == "the card number fails the Luhn check"


@pytest.mark.parametrize("expiry", ["00/30", "13/30", "99/30"])
def test_expiry_month_out_of_range(expiry):
    assert problem(expiry=expiry) == MONTH_MSG


@pytest.mark.parametrize("expiry", ["1/30", "012/30", "12/9", "1230", "12-30", "12/30/",
                                    "", "ab/cd", "١٢/٣٠", "1²/30", " 1/30"])
def test_expiry_must_be_mm_slash_yy_in_ascii(expiry):
    assert problem(expiry=expiry) == FORMAT_MSG


def test_card_expires_after_the_last_day_of_its_month():
    assert problem(expiry="04/30") == "the card has expired"
    assert problem(expiry="05/30") == ""
    assert problem(expiry="05/30", today=datetime.date(2030, 5, 31)) == ""
    assert problem(expiry="12/29", today=datetime.date(2030, 1, 1)) == "the card has expired"
    assert problem(expiry="01/31", today=datetime.date(2030, 12, 31)) == ""


def test_ascii_digits():
    assert ascii_digits("0123456789")
    for text in ("", "12a", "²", "١٢", "１", " 1", "1.0"):
        assert not ascii_digits(text), text
