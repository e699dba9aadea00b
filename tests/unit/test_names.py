"""Names people can trust (spec section 15): the validators of new names, the key that
tells usernames apart, accounts found by it, and how the CLIs show names (escaped, and
aligned by display width)."""
from __future__ import annotations

import unicodedata

import pytest
from helpers.inprocess import HASH, SALT, code_of, stored_account

from market import fields
from market.cli.views import display_width, items_table, rating_text, shown, table
from market.customer.accounts import Accounts, Role
from protocol import ApiError

BIDI = [0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
        0x2066, 0x2067, 0x2068, 0x2069]
INVISIBLE = [0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF]


def refused(check, value, name="username") -> str:
    with pytest.raises(ApiError) as info:
        check(name, value)
    assert info.value.code == "bad_request"
    return info.value.message


# -- new names: Name ---------------------------------------------------------------------

@pytest.mark.parametrize("check", [fields.USERNAME, fields.ITEM_NAME])
@pytest.mark.parametrize("point", BIDI + INVISIBLE)
def test_new_names_refuse_bidi_controls_and_invisible_characters_by_code_point(check, point):
    char = chr(point)
    expected = (f"'username' must not contain U+{point:04X} "
                f"({unicodedata.name(char)}).")
    for value in (f"bob{char}", f"{char}bob", f"b{char}ob", char):
        assert refused(check, value) == expected


def test_the_refusal_names_the_character_as_the_contract_shows():
    assert refused(fields.USERNAME, "\u202enimda") == \
        "'username' must not contain U+202E (RIGHT-TO-LEFT OVERRIDE)."
    assert refused(fields.ITEM_NAME, "lamp\u202egnp.exe", "name") == \
        "'name' must not contain U+202E (RIGHT-TO-LEFT OVERRIDE)."
    assert refused(fields.USERNAME, "bob\u200b") == \
        "'username' must not contain U+200B (ZERO WIDTH SPACE)."


@pytest.mark.parametrize("value", [" ", "   ", "\u00a0", "\u3000\u3000", " \u2003 "])
def test_new_names_refuse_whitespace_only(value):
    assert refused(fields.USERNAME, value) == "'username' must not be whitespace only."
    assert refused(fields.ITEM_NAME, value, "name") == "'name' must not be whitespace only."


@pytest.mark.parametrize("value, where, point", [
    (" bob", "begins", "U+0020 (SPACE)"), ("bob ", "ends", "U+0020 (SPACE)"),
    ("\u00a0bob", "begins", "U+00A0 (NO-BREAK SPACE)"),
    ("lamp\u3000", "ends", "U+3000 (IDEOGRAPHIC SPACE)")])
def test_new_names_refuse_whitespace_at_either_end(value, where, point):
    assert refused(fields.ITEM_NAME, value, "name") == \
        f"'name' must not begin or end with whitespace, and {where} with {point}."


def test_new_names_keep_inner_spaces_and_other_scripts():
    for value in ("desk lamp", "a\u00a0b", "ランプ", "Zoë", "Ωμέγα", "lamp (2)"):
        assert fields.ITEM_NAME("name", value) == value
        assert fields.USERNAME("username", value) == value


def test_new_names_are_stored_nfc():
    decomposed = "Zoe\u0308"  # e + COMBINING DIAERESIS
    assert fields.USERNAME("username", decomposed) == "Zo\u00eb"
    assert fields.ITEM_NAME("name", "cafe\u0301") == "caf\u00e9"
    hangul = "\u1112\u1161\u11ab"  # jamo of 한
    assert fields.ITEM_NAME("name", hangul) == "\ud55c"


def test_the_length_limit_applies_to_the_normalised_name():
    assert fields.USERNAME("username", "e\u0301" * 32) == "\u00e9" * 32  # 64 code points in
    assert refused(fields.USERNAME, "e\u0301" * 33) == \
        "'username' must be a string of 1 to 32 characters."
    assert refused(fields.USERNAME, "") == "'username' must be a string of 1 to 32 characters."
    assert refused(fields.USERNAME, 7) == "'username' must be a string of 1 to 32 characters."


# -- names that may be stored: the old rule --------------------------------------------------

@pytest.mark.parametrize("value", ["bob\u200b", "\u202enimda", " bob ", "   ", "e\u0301"])
def test_login_and_stored_item_names_keep_the_old_rule_and_the_name_as_typed(value):
    assert fields.LOGIN_USERNAME("username", value) == value
    assert fields.STORED_ITEM_NAME("name", value) == value
    assert fields.LOGIN_CREDENTIALS["username"] is fields.LOGIN_USERNAME
    assert fields.CREDENTIALS["username"] is fields.USERNAME


# -- name_key ----------------------------------------------------------------------------

def test_name_key_folds_case_and_normal_form():
    assert fields.name_key("Bob") == fields.name_key("BOB") == fields.name_key("bob")
    assert fields.name_key("Zoe\u0308") == fields.name_key("ZO\u00cb") == "zo\u00eb"
    assert fields.name_key("Stra\u00dfe") == fields.name_key("STRASSE")
    assert fields.name_key("bob") != fields.name_key("bob\u200b")


# -- accounts -------------------------------------------------------------------------------



def test_a_name_is_taken_in_any_case_within_its_role():
    accounts = Accounts()
    accounts.add(Role.BUYER, stored_account(1, "bob"))
    for name in ("Bob", "BOB", "bob"):
        assert code_of(accounts.new_id, Role.BUYER, name) == "conflict"
    assert accounts.new_id(Role.SELLER, "Bob") == 1  # the other role has its own names
    accounts.add(Role.BUYER, stored_account(2, "Zo\u00eb"))
    assert code_of(accounts.new_id, Role.BUYER, "ZO\u00cb") == "conflict"


def test_login_finds_the_account_in_any_case_and_normal_form():
    accounts = Accounts()
    accounts.add(Role.BUYER, stored_account(1, "bob"))
    accounts.add(Role.BUYER, stored_account(2, "Zo\u00eb"))
    for name, user_id in (("BOB", 1), ("Bob", 1), ("zoe\u0308", 2), ("ZO\u00cb", 2)):
        assert accounts.verify(Role.BUYER, name, bytes.fromhex(HASH)).user_id == user_id
        assert accounts.salt(Role.BUYER, name) == {"salt": SALT, "cost": 10}
    assert code_of(accounts.verify, Role.SELLER, "BOB", bytes.fromhex(HASH)) == "auth_failed"


def test_old_accounts_differing_only_in_case_log_in_by_their_exact_names_only():
    accounts = Accounts()
    for user_id, name in enumerate(("Bob", "bob", "bob\u200b"), 1):
        accounts.add(Role.SELLER, stored_account(user_id, name))  # as a journal replays them
    for user_id, name in enumerate(("Bob", "bob", "bob\u200b"), 1):
        assert accounts.verify(Role.SELLER, name, bytes.fromhex(HASH)).user_id == user_id
    assert code_of(accounts.verify, Role.SELLER, "BOB", bytes.fromhex(HASH)) == "auth_failed"
    assert accounts.salt(Role.SELLER, "BOB")["cost"] is None  # like an unknown name
    assert accounts.verify(Role.SELLER, "BOB\u200b", bytes.fromhex(HASH)).user_id == 3
    assert code_of(accounts.new_id, Role.SELLER, "BOB") == "conflict"
    again = Accounts()
    again.restore(accounts.dump())
    assert code_of(again.verify, Role.SELLER, "BOB", bytes.fromhex(HASH)) == "auth_failed"
    assert again.verify(Role.SELLER, "Bob", bytes.fromhex(HASH)).user_id == 1


# -- how the CLIs show names ----------------------------------------------------------------

@pytest.mark.parametrize("text, width", [
    ("", 0), ("lamp", 4), ("ランプ", 6), ("ＡＢ", 4), ("e\u0301", 1), ("caf\u00e9", 4),
    ("台灯 lamp", 9), ("a\u20dd", 1), ("\u0928\u094d", 1)])
def test_display_width_counts_wide_characters_twice_and_marks_not_at_all(text, width):
    assert display_width(text) == width


def test_shown_escapes_bidi_invisible_and_control_characters_only():
    assert shown("\u202enimda") == "\\u202enimda"
    assert shown("bob\u200b") == "bob\\u200b"
    assert shown("lamp\u202egnp.exe") == "lamp\\u202egnp.exe"
    assert shown("a\u00adb\ufeff\u061c\u2066") == "a\\u00adb\\ufeff\\u061c\\u2066"
    assert shown("a\nb\x1b[31m") == "a\\u000ab\\u001b[31m"
    for plain in ("desk lamp", "ランプ", "Zo\u00eb", "a\u00a0b", "back\\slash"):
        assert shown(plain) == plain


def test_a_table_aligns_wide_and_combining_names_by_display_width():
    lines = table([[1, "ランプ", "$1.00"], [2, "cafe\u0301", "$2.00"], [30, "desk", "$30.00"]],
                  ["ID", "Name", "Price"]).splitlines()
    assert lines == ["ID  Name     Price",
                     " 1  ランプ   $1.00",
                     " 2  cafe\u0301     $2.00",
                     "30  desk    $30.00"]
    assert len({display_width(line) for line in lines}) == 1


def test_tables_and_ratings_show_hidden_characters_escaped_and_stay_aligned():
    item = {"item_id": 7, "name": "lamp\u202egnp.exe", "category": 1, "condition": "new",
            "price": 2.5, "quantity": 1, "keywords": ["a\u200bb"], "thumbs_up": 0,
            "thumbs_down": 0, "seller_id": 3}
    text = items_table([item, {**item, "item_id": 8, "name": "x", "keywords": []}])
    assert "\u202e" not in text and "\u200b" not in text
    assert "lamp\\u202egnp.exe" in text and "a\\u200bb" in text
    header, first, second = text.splitlines()
    end_of_cat = header.index("Cat") + len("Cat")  # a right-aligned column
    assert first[end_of_cat - 2:end_of_cat + 1] == second[end_of_cat - 2:end_of_cat + 1] \
        == " 1 "
    rating = rating_text({"name": "bob\u200b", "seller_id": 3, "thumbs_up": 0,
                          "thumbs_down": 0, "items_sold": 0})
    assert rating.startswith("Seller bob\\u200b (id 3)")
