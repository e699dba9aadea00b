"""The seller and buyer CLIs, driven as a person would: lines in, text out."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from helpers.cli import Conversation, buyer_cli, cli, free_port, ok, row, seller_cli
from helpers.market import ROOT, start_market

from market.ops.launch import ServiceProcess


def assert_friendly(stderr: str, count: int) -> list[int]:
    """``count`` error lines, each one sentence for a person after the number of the input
    line it is about ("line 2: ..."): no trace, no JSON. Returns those numbers."""
    lines = stderr.splitlines()
    assert len(lines) == count, stderr
    assert "Traceback" not in stderr and "{" not in stderr and "'code'" not in stderr
    numbers = []
    for line in lines:
        where, _, sentence = line.partition(": ")
        assert re.fullmatch(r"line [1-9][0-9]*", where), line
        assert sentence[0].isupper() and sentence.endswith("."), line
        numbers.append(int(where.split()[1]))
    return numbers


def test_whole_story(market, unique):
    """Seller lists; buyer searches, fills and saves the cart, buys, rates; seller sees it."""
    alice, bob, word = unique("alice"), unique("bob"), unique("k")[:8]
    out = ok(seller_cli(market, f"signup {alice} pw",
                        f"register lamp 3 new 17.50 5 desk,{word}",
                        f'register "desk lamp" 3 used $1200 2 {word}',
                        "list"))
    assert f"Logged in as {alice}" in out
    lamp, desk_lamp = [int(line.split()[-1].rstrip("."))
                       for line in out.splitlines() if line.startswith("Listed as item")]
    header = row(out, "ID", "Name", "Price", "Units")
    lamp_row = row(out, str(lamp), "lamp", "$17.50")
    assert row(out, str(desk_lamp), "$1,200.00", "used")
    # The price column is right-aligned under its header: a person can scan it.
    assert lamp_row.index("$17.50") + len("$17.50") == header.index("Price") + len("Price")

    out = ok(buyer_cli(market, f"signup {bob} secret", f"search 3 {word}"))
    assert row(out, str(lamp), "lamp", "$17.50", "5") and row(out, str(desk_lamp), "$1,200.00")
    out = ok(buyer_cli(market, f"login {bob} secret",
                       f"add {lamp} 2", f"add {desk_lamp} 1", f"remove {desk_lamp} 1", "save"))
    out = ok(buyer_cli(market, f"login {bob} secret", "cart"))  # the saved cart is back
    assert row(out, str(lamp), "lamp", "$17.50", "2", "$35.00")
    assert "desk lamp" not in out and out.endswith("Total: $35.00\n")

    out = ok(buyer_cli(market, f"login {bob} secret",
                       'buy "Bob Buyer" "4111 1111 1111 1111" 12/99',
                       "cart", "purchases", f"rate {lamp} up", f"item {lamp}"))
    assert "Bought for $35.00, paid with the card ending 1111." in out
    assert "Your cart is empty." in out
    assert "Units bought in all: 2." in out
    assert "Thanks, your vote is counted." in out
    assert "units left  3" in out and "votes       1 up, 0 down" in out

    out = ok(seller_cli(market, f"login {alice} pw", "rating", "list"))
    assert "1 thumbs up, 0 thumbs down, 2 units sold." in out
    assert "+1/-0" in row(out, str(lamp), "lamp", "3")


def test_values_are_checked_before_sending(market, unique):
    name = unique("carol")
    result = seller_cli(market,
                        "list",                                  # not logged in yet
                        f"signup {name} pw",
                        "register lamp 3 new 17.555 5",         # three decimals
                        "register lamp 100 new 17.50 5",        # category out of range
                        "register lamp 3 mint 17.50 5",         # no such condition
                        "register lamp 3 new 17.50 5 a,b,c,d,e,f",  # six keywords
                        "register lamp 3 new 17.50",            # quantity missing
                        'register "lamp 3 new 1 1',             # quote not closed
                        "price 1",                               # price missing
                        "list everything",                       # too many values
                        "sell lamp",                             # no such command
                        "list")
    assert assert_friendly(result.stderr, 10) == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "Log in first" in result.stderr.splitlines()[0]
    assert "line 3: Price in dollars must be a number above 0" in result.stderr
    assert "line 4: Category must be a whole number from 0 to 99." in result.stderr
    assert "line 5: Condition must be new or used." in result.stderr
    assert "line 7: QUANTITY is missing; usage: register NAME" in result.stderr
    assert result.returncode == 1
    assert result.stdout.endswith("You have no items yet; put one up for sale with register.\n")


def test_server_errors_are_one_sentence(market, unique):
    name = unique("dave")
    result = buyer_cli(market, f"signup {name} pw", f"signup {name} pw", "logout",
                       f"login {name} wrong", f"login {name} pw",
                       "add 999999 1", "buy Dave 4111111111111111 12/99", "rate 999999 up",
                       "rating 999999")
    assert assert_friendly(result.stderr, 6) == [2, 4, 6, 7, 8, 9]
    assert "line 4: Wrong username or password." in result.stderr
    assert "line 2: " in result.stderr and "taken" in result.stderr


def test_dead_port_is_reported_without_traceback():
    port = free_port()
    result = cli("seller_client.py", None, "login alice pw", "rating",
                 env={"SELLER_SERVER_PORT": str(port)})
    assert assert_friendly(result.stderr, 2) == [1, 2]
    assert f"line 1: Cannot reach the seller frontend at 127.0.0.1:{port}" in result.stderr
    assert result.returncode == 1


def test_help_names_every_op():
    seller_ops = ["CreateAccount", "Login", "Logout", "GetSellerRating", "RegisterItemForSale",
                  "ChangeItemPrice", "UpdateUnitsForSale", "DisplayItemsForSale"]
    buyer_ops = ["CreateAccount", "Login", "Logout", "SearchItemsForSale", "GetItem",
                 "AddItemToCart", "RemoveItemFromCart", "SaveCart", "ClearCart", "DisplayCart",
                 "MakePurchase", "ProvideFeedback", "GetSellerRating", "GetBuyerPurchases"]
    for script, ops, variable in [("seller_client.py", seller_ops, "SELLER_SERVER_PORT"),
                                  ("buyer_client.py", buyer_ops, "BUYER_SERVER_PORT")]:
        usage = subprocess.run([sys.executable, str(ROOT / script), "--help"],
                               capture_output=True, text=True, timeout=30).stdout
        assert variable in usage and f"| python3 {script}" in usage
        assert f" {len(ops)}  rating" in usage  # numbered 1..len(ops), GetSellerRating last
        helped = ok(cli(script, free_port(), *(f"help {op}" for op in ops)))
        for op in ops:
            assert f"({op})." in helped


def test_frontend_down_then_back(fresh_market, unique):
    """The prompt stays alive while the frontend is down, and works again once it is back."""
    name, frontend = unique("erin"), fresh_market.seller_server
    seller = Conversation.piped("seller_client.py", frontend.address[1])
    seller.say(f"signup {name} pw", "Logged in")
    frontend.stop()
    seller.say("register kettle 5 new 9.99 1", "Nothing was sent")
    seller.say("list", "Nothing was sent")
    frontend.restart()
    seller.say("register teapot 5 new 9.99 1", "Listed as item")
    out = seller.say("list", "teapot")
    assert "kettle" not in out  # the write made while down was never sent, not sent late
    assert seller.finish() == 1  # the failed commands are counted


def test_lost_reply_with_no_frontend_left_is_said_unknown(unique):
    """The only buyer frontend dies mid-purchase: the CLI says the outcome is unknown."""
    market = start_market(buyer_args=("--test-commit-delay", "1"))
    try:
        seller = market.seller()
        seller.register(unique("hank"))
        item_id = seller("RegisterItemForSale", name="vase", category=2, keywords=[],
                         condition="new", price=5, quantity=3)["item_id"]
        buyer = Conversation.piped("buyer_client.py", market.buyer_server.address[1])
        name = unique("ivy")
        buyer.say(f"signup {name} pw", "Logged in")
        buyer.say(f"add {item_id} 1", "Total: $5.00")
        os.write(buyer.write_fd, b"buy Ivy 4111111111111111 12/99\n")
        time.sleep(0.3)  # inside the frontend's pause between taking units and recording
        market.buyer_server.kill()
        buyer.expect("so it may or may not have happened; check with 'purchases'")
        market.buyer_server.restart()
        buyer.say("purchases", "No purchases yet.")
        assert buyer.finish() == 1
    finally:
        market.stop()


@pytest.fixture(scope="module")
def logged_market(tmp_path_factory):
    """A market whose seller frontend logs every op to a file (DEBUG: '<op> ok')."""
    product_db = ServiceProcess("product_db.py").start()
    customer_db = ServiceProcess("customer_db.py").start()
    log = tmp_path_factory.mktemp("logged") / "seller.log"
    with open(log, "w") as log_file:
        frontend = subprocess.Popen(
            [sys.executable, str(ROOT / "seller_server.py"), "--port", "0", "--log-level",
             "DEBUG", "--product-db", "%s:%d" % product_db.address,
             "--customer-db", "%s:%d" % customer_db.address],
            stdout=subprocess.PIPE, stderr=log_file, text=True)
    port = int(frontend.stdout.readline().rsplit(":", 1)[1])
    yield port, log
    frontend.terminate()
    frontend.wait(10)
    customer_db.stop()
    product_db.stop()


@pytest.mark.parametrize("ending", ["quit", "end of input", "SIGINT", "SIGTERM"])
def test_logs_out_when_leaving(logged_market, unique, ending):
    port, log = logged_market
    seller = Conversation.piped("seller_client.py", port)
    seller.say(f"signup {unique('frank')} pw", "Logged in")
    logouts = log.read_text().count("Logout ok")
    if ending == "quit":
        os.write(seller.write_fd, b"quit\n")
    elif ending.startswith("SIG"):
        seller.proc.send_signal(getattr(signal, ending))
    assert seller.finish() in (0, 128 + signal.SIGTERM)
    assert b"Traceback" not in seller.seen
    assert log.read_text().count("Logout ok") == logouts + 1


def test_interactive_at_a_terminal(market, unique):
    """At a terminal: a menu, a prompt per missing value, asked again after a bad one."""
    seller = Conversation.at_terminal("seller_client.py", market.seller_server.address[1])
    try:
        menu = seller.expect("seller> ")
        assert "  8  rating" in menu and "register NAME CATEGORY" in menu
        seller.say("signup " + unique("gina"), "Password: ")
        seller.say("pw", "Password again: ")  # a new password is asked for twice
        seller.say("pw", "> ")
        seller.say("register", "Item name (1-32 characters): ")
        seller.say("mug", "Category (0-99): ")
        assert "Category must be a whole number from 0 to 99." in seller.say("1000", "(0-99): ")
        seller.say("7", "Condition (new or used): ")
        seller.say("Used", "Price in dollars, e.g. 17.50: ")
        seller.say("$4.50", "Units for sale: ")
        seller.say("2", "(Enter to skip): ")
        assert "Listed as item" in seller.say("", "> ")
        assert "$4.50" in seller.say("list", "> ")
        seller.say("price", "Item id: ")
        assert "Cancelled." in seller.say("", "> ")
        os.write(seller.write_fd, b"\x04")  # Ctrl-D
        seller.expect("Logged out.")
        assert seller.proc.wait(15) == 0
    finally:
        seller.kill()
        os.close(seller.read_fd)
