"""The contract's fields, defined once, as validators.

Every field of the spec (names 1-32, category 0-99, condition, keywords,
price, quantity, list limits, card rules and Luhn) lives here as a
validator or a pure function, used alike by the servers' validation and the
CLIs' prompts (the numbers of its limits come from ``market.config``). Also
the internal fields frontends and databases exchange, and money: cents
inside, ``dollars`` on the wire.

Names (section 15): a new username or item name is checked by ``Name`` (stored
NFC, no bidi controls, no invisible characters, no whitespace at either end);
names stored before that rule still pass the old one (``Str``) wherever a name
is read back: a login, a purchase's lines. Usernames are told apart by
``name_key`` (case-insensitively).
"""
from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from market.config import (
    HASH_COST_MAX,
    HASH_COST_MIN,
    PRICE_MAX_DOLLARS,
    QUANTITY_MAX,
    SEARCH_LIMIT_DEFAULT,
    SEARCH_LIMIT_MAX,
)
from protocol import (
    ApiError,
    ExactDollars,
    Hex,
    Int,
    Keywords,
    Omittable,
    OneOf,
    Price,
    Str,
)

# -- names people can trust (section 15) -------------------------------------------

# Bidi controls: they reorder what follows ("\u202enimda" shows as "admin").
BIDI_CONTROLS = frozenset(map(chr, (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                                    *range(0x2066, 0x206A))))
# Invisible characters: "bob\u200b" looks exactly like "bob".
INVISIBLE = frozenset(map(chr, (0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)))
# What a new name may not hold besides control characters; what the CLIs escape in an old one.
HIDDEN = BIDI_CONTROLS | INVISIBLE
_REFUSED_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(sorted(HIDDEN)) + "]")


def code_point(char: str) -> str:
    """'U+202E (RIGHT-TO-LEFT OVERRIDE)'; a control character has no name of its own."""
    return f"U+{ord(char):04X} ({unicodedata.name(char, '') or 'a control character'})"


def name_key(name: str) -> str:
    """What tells usernames apart: NFC, case folded (NFC again: folding may undo it).
    'Bob', 'BOB' and 'bob' share one key, and so do 'e\u0301' and '\u00e9'."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


@dataclass
class Name(Str):
    """A new username or item name -> NFC (section 15): 1 to 32 characters once normalised;
    no control characters, bidi controls or invisible characters (the message names the
    first by its code point); not whitespace only, and no whitespace at either end. A
    ``Str`` to whatever asks what a field is (a string of ``min_len`` to ``max_len``)."""

    def __call__(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(name, self.what())
        text = unicodedata.normalize("NFC", value)
        if not self.min_len <= len(text) <= self.max_len:
            raise self.fail(name, self.what())
        refused = _REFUSED_IN_NAMES.search(text)
        if refused:
            raise ApiError("bad_request",
                           f"'{name}' must not contain {code_point(refused.group())}.")
        if text.isspace():
            raise ApiError("bad_request", f"'{name}' must not be whitespace only.")
        for where, char in (("begins", text[0]), ("ends", text[-1])):
            if char.isspace():
                raise ApiError("bad_request", f"'{name}' must not begin or end with "
                                              f"whitespace, and {where} with {code_point(char)}.")
        return text


# -- what users send ----------------------------------------------------------

USERNAME = Name(1, 32)  # a new account's name (CreateAccount)
# A name to log in with: the rule before section 15 (1-32 characters, no control
# characters), which every stored name keeps; matched by ``name_key`` where unambiguous.
LOGIN_USERNAME = Str(1, 32)
PASSWORD = Str(1, 128, no_control=False)
CREDENTIALS = {"username": USERNAME, "password": PASSWORD}  # CreateAccount
LOGIN_CREDENTIALS = {"username": LOGIN_USERNAME, "password": PASSWORD}  # Login
ITEM_ID = Int(1)
SELLER_ID = Int(1)
ITEM_NAME = Name(1, 32)  # a new item's name (RegisterItemForSale)
STORED_ITEM_NAME = Str(1, 32)  # an item's name as stored (maybe before section 15)
CATEGORY = Int(0, 99)
CONDITION = OneOf(("new", "used"))
KEYWORDS = Keywords()  # 0-5 keywords of 1-8 non-space characters
PRICE = Price(PRICE_MAX_DOLLARS)  # dollars, two decimals at most -> cents
QUANTITY = Int(1, QUANTITY_MAX)
VOTE = OneOf(("up", "down"))
SEARCH_LIMIT = Omittable(Int(1, SEARCH_LIMIT_MAX), SEARCH_LIMIT_DEFAULT)
CARD_NAME_LENGTH = (1, 64)
CARD_NUMBER_LENGTH = (13, 19)

# -- what frontends and databases exchange ------------------------------------

ROLE = OneOf(("buyer", "seller"))
PURCHASE_ID = Str(1, 64)
VOTE_KEY = Str(1, 64)  # names one vote: the product database decides each key once
PRICE_CENTS = Int(1, PRICE_MAX_DOLLARS * 100)
SALT = Hex(16)
PASSWORD_HASH = Hex(32)
HASH_COST = Int(HASH_COST_MIN, HASH_COST_MAX)  # scrypt's n is 2 ** cost
SECRET_PROOF = Str(64, 64)  # HMAC-SHA256, hex

# -- money ----------------------------------------------------------------------

EXACT_FLOAT_CENTS = 10 ** 15  # below this, cents / 100 as a float prints exactly


def dollars(cents: int) -> float | int | ExactDollars:
    """Exact cents -> the JSON number clients see (17.5 for 1750), exact at any size."""
    if abs(cents) < EXACT_FLOAT_CENTS:
        return cents / 100
    if cents % 100 == 0:
        return cents // 100
    return ExactDollars(cents)


# -- cards ----------------------------------------------------------------------

def card_problem(card_name: str, card_number: str, expiry: str, today: datetime.date) -> str:
    """Why the card is rejected, or '' when it is acceptable."""
    shortest, longest = CARD_NAME_LENGTH
    if not shortest <= len(card_name) <= longest or any(ord(c) < 32 for c in card_name):
        return f"the name on the card must be {shortest} to {longest} characters"
    shortest, longest = CARD_NUMBER_LENGTH
    if not (ascii_digits(card_number) and shortest <= len(card_number) <= longest):
        return f"the card number must be {shortest} to {longest} digits"
    if not luhn_ok(card_number):
        return "the card number fails the Luhn check"
    month, slash, year = expiry.partition("/")
    if not (slash and len(month) == 2 and len(year) == 2 and ascii_digits(month)
            and ascii_digits(year)):
        return "the expiry must be MM/YY"
    if not 1 <= int(month) <= 12:
        return "the expiry's month must be 01 to 12"
    if (2000 + int(year), int(month)) < (today.year, today.month):
        return "the card has expired"
    return ""


def ascii_digits(text: str) -> bool:
    """Only 0-9: ``str.isdigit`` also accepts '²' and Arabic-Indic digits."""
    return bool(text) and all("0" <= c <= "9" for c in text)


def luhn_ok(number: str) -> bool:
    """The Luhn check digit of ``number`` (ASCII digits) is right."""
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0
