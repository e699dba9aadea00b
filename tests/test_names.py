"""Names people can trust (spec section 15), over real processes: new usernames and item
names are refused with the code point of a bidi control, an invisible character or
whitespace at an end; usernames are unique case-insensitively and logged in to the same
way; NFD names are stored NFC; a data directory written before the rule still logs in
and lists its names as stored; the CLIs show such names escaped and align wide ones."""
from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import unicodedata

import pytest
from helpers.market import CARD, ROOT, failure, listing, start_market, write_data_dir

BIDI = [0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
        0x2066, 0x2067, 0x2068, 0x2069]
INVISIBLE = [0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF]
ROLES = ["seller", "buyer"]


def code_point(point: int) -> str:
    return f"U+{point:04X} ({unicodedata.name(chr(point))})"


def refusal(api, op: str, **args) -> str:
    """The message of a ``bad_request`` answer to ``op``."""
    error = failure(api, op, **args)
    assert error.code == "bad_request", (op, args, error.message)
    return error.message


def item(name: str, category: int = 4) -> dict:
    return {"name": name, "category": category, "keywords": [], "condition": "new",
            "price": 2.5, "quantity": 3}


# -- new names that lie are refused, naming the character -----------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_a_new_username_with_a_bidi_control_or_invisible_character_is_refused_by_code_point(
        market, unique, role):
    api = getattr(market, role)()
    assert refusal(api, "CreateAccount", username="\u202enimda", password="pw") == \
        "'username' must not contain U+202E (RIGHT-TO-LEFT OVERRIDE)."
    base = unique("bob")
    for point in BIDI + INVISIBLE:
        for name in (f"{base}{chr(point)}", f"{chr(point)}{base}", f"b{chr(point)}{base}"):
            assert code_point(point) in refusal(api, "CreateAccount", username=name,
                                                password="pw"), name
            assert api.error("Login", username=name, password="pw") == "auth_failed"
    api("CreateAccount", username=base, password="pw")  # none of them took the name


@pytest.mark.parametrize("role", ROLES)
def test_a_new_username_of_spaces_or_with_spaces_at_an_end_is_refused(market, unique, role):
    api = getattr(market, role)()
    name = unique("spaced")
    for blank in (" ", "   ", "\u3000", "\u00a0 "):
        assert refusal(api, "CreateAccount", username=blank, password="pw") == \
            "'username' must not be whitespace only."
    assert refusal(api, "CreateAccount", username=f" {name}", password="pw") == \
        "'username' must not begin or end with whitespace, and begins with U+0020 (SPACE)."
    assert refusal(api, "CreateAccount", username=f"{name}\u3000", password="pw") == \
        ("'username' must not begin or end with whitespace, and ends with "
         "U+3000 (IDEOGRAPHIC SPACE).")
    api("CreateAccount", username=name, password="pw")


def test_a_new_item_name_that_lies_is_refused_by_code_point(seller):
    assert refusal(seller, "RegisterItemForSale", **item("lamp\u202egnp.exe")) == \
        "'name' must not contain U+202E (RIGHT-TO-LEFT OVERRIDE)."
    for point in BIDI + INVISIBLE:
        assert code_point(point) in refusal(seller, "RegisterItemForSale",
                                            **item(f"lamp{chr(point)}"))
    assert refusal(seller, "RegisterItemForSale", **item("    ")) == \
        "'name' must not be whitespace only."
    assert "ends with U+0020 (SPACE)" in refusal(seller, "RegisterItemForSale", **item("lamp "))
    assert "begins with U+00A0 (NO-BREAK SPACE)" in \
        refusal(seller, "RegisterItemForSale", **item("\u00a0lamp"))
    assert seller("DisplayItemsForSale")["items"] == []
    listing(seller, "desk lamp")  # inner spaces are fine


# -- one name, one account, in any case --------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_bob_is_taken_once_bob_is_and_BOB_logs_in_to_bobs_account(market, unique, role):
    api = getattr(market, role)()
    bob = unique("bob")
    user_id = api("CreateAccount", username=bob, password="pw")[f"{role}_id"]
    for other in (bob.capitalize(), bob.upper(), "bO" + bob[2:]):
        error = failure(api, "CreateAccount", username=other, password="pw2")
        assert error.code == "conflict", other
    for spelling in (bob, bob.upper(), bob.capitalize()):
        assert api("Login", username=spelling, password="pw")[f"{role}_id"] == user_id
    assert api.error("Login", username=bob.upper(), password="pw2") == "auth_failed"
    other_role = ROLES[1 - ROLES.index(role)]
    assert getattr(market, other_role)()("CreateAccount", username=bob.upper(), password="x")


def test_an_nfd_name_is_stored_nfc_and_logs_in_either_way(market, unique):
    api = market.seller()
    tail = unique("")
    decomposed, composed = f"Zoe\u0308{tail}", f"Zo\u00eb{tail}"
    seller_id = api("CreateAccount", username=decomposed, password="pw")["seller_id"]
    api.login(composed)
    assert api("GetSellerRating")["seller_id"] == seller_id
    buyer = market.buyer()
    buyer.register(unique("fan"))
    assert buyer("GetSellerRating", seller_id=seller_id)["name"] == composed
    assert api("Login", username=decomposed, password="pw")["seller_id"] == seller_id
    assert failure(api, "CreateAccount", username=composed, password="pw").code == "conflict"
    # An item's name too; the 32-character limit counts the NFC name (64 code points in).
    item_id = listing(api, "cafe\u0301 lamp")
    long_id = listing(api, "e\u0301" * 32)
    assert buyer("GetItem", item_id=item_id)["item"]["name"] == "caf\u00e9 lamp"
    names = {i["item_id"]: i["name"] for i in api("DisplayItemsForSale")["items"]}
    assert names == {item_id: "caf\u00e9 lamp", long_id: "\u00e9" * 32}
    assert refusal(api, "RegisterItemForSale", **item("e\u0301" * 33)) == \
        "'name' must be a string of 1 to 32 characters."


# -- names stored before the rule ---------------------------------------------------------------

MARKET_ID = "5ec7105e5ec7105e"
LEGACY_SELLERS = ["Bob", "bob", "bob\u200b", "\u202enimda", "Zoe\u0308"]
LEGACY_BUYER = "buyer\u2060"
LEGACY_ITEMS = {1: "lamp\u202egnp.exe", 2: "cafe\u0301"}  # item id -> name (seller 1)
COST = 10


def password_of(name: str) -> str:
    return f"pw-{name.encode().hex()}"


def scrypt(password: str, salt: bytes) -> bytes:
    """The hash a frontend makes of ``password`` at ``COST`` (``market.frontend.service``)."""
    return hashlib.scrypt(password.encode(), salt=salt, n=2 ** COST, r=8, p=1, dklen=32)


def account_record(role: str, user_id: int, name: str) -> dict:
    salt = secrets.token_bytes(16)
    return {"kind": "account", "role": role, "user_id": user_id, "name": name,
            "salt": salt.hex(), "hash": scrypt(password_of(name), salt).hex(),
            "cost": COST}


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    """A market on data directories written by hand as a version before section 15 could
    leave them: sellers 'Bob', 'bob', 'bob\\u200b', '\\u202enimda' and an NFD 'Zoe\\u0308'
    (ids 1-5), a buyer with a U+2060 in its name, and seller 1's items 'lamp\\u202egnp.exe'
    and an NFD 'cafe\\u0301' (ids 1 and 2, category 5)."""
    root = tmp_path_factory.mktemp("legacy")
    identity = {"kind": "market", "market": MARKET_ID}
    write_data_dir(root / "customer", "customer_db", [
        identity, *(account_record("seller", user_id, name)
                    for user_id, name in enumerate(LEGACY_SELLERS, 1)),
        account_record("buyer", 1, LEGACY_BUYER)], data_format=3)
    write_data_dir(root / "product", "product_db", [identity, *(
        {"kind": "item_registered", "item_id": item_id, "seller_id": 1, "name": name,
         "category": 5, "keywords": ["old"], "condition": "used", "price": 250, "quantity": 4}
        for item_id, name in LEGACY_ITEMS.items())], data_format=3)
    market = start_market(product_args=("--data-dir", str(root / "product")),
                          customer_args=("--data-dir", str(root / "customer")))
    yield market
    market.stop()


def test_stored_names_that_break_the_rule_still_log_in_and_are_listed_but_are_not_new(legacy):
    for seller_id, name in enumerate(LEGACY_SELLERS, 1):
        api = legacy.seller()
        assert api.login(name, password_of(name))["seller_id"] == seller_id
        assert api("GetSellerRating")["seller_id"] == seller_id
        assert legacy.seller().error("Login", username=name, password="wrong") == "auth_failed"
    buyer = legacy.buyer()
    assert buyer.login(LEGACY_BUYER, password_of(LEGACY_BUYER))["buyer_id"] == 1
    for seller_id, name in enumerate(LEGACY_SELLERS, 1):
        assert buyer("GetSellerRating", seller_id=seller_id)["name"] == name  # as stored
    # Only new names are checked: a stored one cannot be made again, nor in another case.
    api = legacy.seller()
    for name in ("Bob", "bob", "BOB", "Zo\u00eb", "ZOE\u0308"):
        assert failure(api, "CreateAccount", username=name, password="pw").code == "conflict"
    assert "U+200B (ZERO WIDTH SPACE)" in refusal(api, "CreateAccount", username="bob\u200b",
                                                  password="pw")
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in refusal(api, "CreateAccount",
                                                        username="\u202enimda", password="pw")
    assert "U+2060 (WORD JOINER)" in refusal(legacy.buyer(), "CreateAccount",
                                             username=LEGACY_BUYER, password="pw")


def test_stored_names_differing_only_in_case_answer_to_their_exact_names_only(legacy):
    api = legacy.seller()
    for name in ("BOB", "bOB"):
        for password in (password_of("Bob"), password_of("bob")):
            assert api.error("Login", username=name, password=password) == "auth_failed"
    # A stored name that shares its key with no other matches in any case and form.
    assert api("Login", username="BOB\u200b", password=password_of("bob\u200b"))[
        "seller_id"] == 3
    for spelling in ("zo\u00eb", "ZO\u00cb"):
        assert api("Login", username=spelling, password=password_of("Zoe\u0308"))[
            "seller_id"] == 5
    assert api("CreateAccount", username="bobby", password="pw")["seller_id"] == 6


def test_stored_item_names_are_listed_searched_and_bought_as_stored(legacy):
    seller = legacy.seller()
    seller.login("Bob", password_of("Bob"))
    listed = {i["item_id"]: i["name"] for i in seller("DisplayItemsForSale")["items"]}
    assert listed == LEGACY_ITEMS
    assert "U+202E" in refusal(seller, "RegisterItemForSale", **item(LEGACY_ITEMS[1], 5))
    assert len(seller("DisplayItemsForSale")["items"]) == len(LEGACY_ITEMS)  # nothing added
    buyer = legacy.buyer()
    buyer.login(LEGACY_BUYER, password_of(LEGACY_BUYER))
    found = {i["item_id"]: i["name"] for i in buyer("SearchItemsForSale", category=5)["items"]}
    assert found == LEGACY_ITEMS
    assert buyer("GetItem", item_id=1)["item"]["name"] == LEGACY_ITEMS[1]
    buyer("AddItemToCart", item_id=1, quantity=1)
    buyer("AddItemToCart", item_id=2, quantity=1)
    bought = buyer("MakePurchase", **CARD)["purchase"]
    assert sorted(line["name"] for line in bought["lines"]) == sorted(LEGACY_ITEMS.values())
    history = buyer("GetBuyerPurchases")["purchases"]
    assert sorted(line["name"] for p in history for line in p["lines"]) == \
        sorted(LEGACY_ITEMS.values())


# -- the CLIs ----------------------------------------------------------------------------------

def cli(script: str, port: int, *lines: str) -> str:
    """Run a CLI with ``lines`` on a piped stdin; its output (it must have succeeded)."""
    result = subprocess.run([sys.executable, str(ROOT / script), "--port", str(port)],
                            input="".join(line + "\n" for line in lines), text=True,
                            encoding="utf-8", capture_output=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    return result.stdout


def columns(text: str) -> int:
    """Terminal columns of ``text``, counted here (wide and fullwidth: two; marks: none)."""
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def from_column(line: str, column: int) -> str:
    """What ``line`` shows from terminal column ``column`` on ('' past its end)."""
    for index in range(len(line) + 1):
        if columns(line[:index]) >= column:
            return line[index:]
    return ""


def test_the_seller_cli_keeps_its_table_aligned_around_wide_item_names(market, unique):
    out = cli("seller_client.py", market.seller_server.address[1], f"signup {unique('wide')} pw",
              "register ランプ 3 new 17.50 5 desk", "register 台灯ＸＬ 3 new 2 1 light",
              'register "cafe\u0301 lamp" 3 used 1,000 2 chair', "list")
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("ID"))
    rows = [line for line in lines[lines.index(header) + 1:] if "+0/-0" in line]
    assert len(rows) == 3, out
    cat_end = columns(header[:header.index("Cat") + len("Cat")])  # right-aligned
    price_end = columns(header[:header.index("Price") + len("Price")])  # right-aligned
    keywords = columns(header[:header.index("Keywords")])  # left-aligned
    for row, price, keyword in zip(rows, ("$17.50", "$2.00", "$1,000.00"),
                                   ("desk", "light", "chair")):
        assert from_column(row, cat_end - 1).startswith("3 "), out
        assert from_column(row, price_end - len(price)).startswith(price + " "), out
        assert from_column(row, keywords).startswith(keyword + " "), out


def test_the_clis_show_a_stored_names_hidden_characters_escaped(legacy):
    buyer_out = cli("buyer_client.py", legacy.buyer_server.address[1],
                    f"login {LEGACY_BUYER} {password_of(LEGACY_BUYER)}", "search 5", "item 1",
                    "rating 4")
    assert "\u202e" not in buyer_out and "\u2060" not in buyer_out
    assert "Logged in as buyer\\u2060 (buyer id 1)" in buyer_out
    assert buyer_out.count("lamp\\u202egnp.exe") == 2  # the search's table, the item's heading
    assert "Item 1: lamp\\u202egnp.exe" in buyer_out
    assert "Seller \\u202enimda (id 4)" in buyer_out
    seller_out = cli("seller_client.py", legacy.seller_server.address[1],
                     f"login {LEGACY_SELLERS[0]} {password_of(LEGACY_SELLERS[0])}", "list",
                     f"login bob\u200b {password_of('bob' + chr(0x200B))}")
    assert "\u202e" not in seller_out and "\u200b" not in seller_out
    assert "lamp\\u202egnp.exe" in seller_out
    assert "Logged in as bob\\u200b (seller id 3)" in seller_out
