"""The CLIs' manners: the wrong server, lines run as typed, Ctrl-C and Ctrl-D at a
terminal, messages that say what is wrong, the unsaved cart, several frontends, --help."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from helpers.cli import CTRL_C, CTRL_D, Conversation, Terminal, cli, port_of, row
from helpers.market import ROOT, failure, listing, start_market

from market.ops.launch import ServiceProcess

# -- 1. the wrong server --------------------------------------------------------------

@pytest.mark.parametrize("script, role, target, what", [
    ("buyer_client.py", "buyer", "seller_server", "the seller frontend"),
    ("seller_client.py", "seller", "buyer_server", "the buyer frontend"),
    ("buyer_client.py", "buyer", "product_db", "the product database"),
    ("seller_client.py", "seller", "customer_db", "the customer database"),
])
def test_wrong_server_is_named_and_nothing_is_sent(market, unique, script, role, target,
                                                   what):
    name = unique("carol")
    port = port_of(getattr(market, target))
    result = cli(script, port, f"signup {name} pw", "help")
    assert result.stderr == (f"127.0.0.1:{port} is {what}, not the {role} frontend; "
                             "nothing was sent.\n"), result
    assert result.returncode == 2
    assert result.stdout == ""  # it stopped there: not even the help that followed
    # No account was made on either side.
    assert market.seller().error("Login", username=name, password="pw") == "auth_failed"
    assert market.buyer().error("Login", username=name, password="pw") == "auth_failed"


# -- 2. at a terminal, a complete line runs as typed ------------------------------------

def test_complete_lines_run_as_typed_at_a_terminal(market, unique):
    word, name = unique("d")[:8], unique("tess")
    seller = market.seller()
    seller.register(unique("sam"))
    lamp = seller("RegisterItemForSale", name="lamp", category=3, keywords=[word],
                  condition="new", price=2, quantity=4)["item_id"]
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as buyer:
        buyer.expect("buyer> ")
        assert "Logged in as" in buyer.say(f"signup {name} pw", f"buyer {name}> ")
        out = buyer.say(f"search 3 {word}", f"buyer {name}> ", timeout=8)
        assert "At most" not in out and "Keywords," not in out, out
        assert row(out, str(lamp), "lamp", "$2.00")
        # Two lines typed ahead: the second is a command, not the answer to a question.
        os.write(buyer.write_fd, f"search 3 {word}\ncart\n".encode())
        out = buyer.expect("Your cart is empty.", timeout=8)
        assert row(out, str(lamp), "lamp") and "LIMIT" not in out and "At most" not in out
        buyer.expect(f"buyer {name}> ")
        # A bare command (by name or number) asks for every value, the optional ones too.
        for bare in ("search", "4"):
            buyer.say(bare, "Category (0-99): ")
            buyer.say("3", "e.g. desk,light (Enter to skip): ")
            buyer.say(word, "At most this many items (1-500) (Enter to skip): ")
            assert row(buyer.say("", f"buyer {name}> "), str(lamp), "lamp")
        # Enter alone cancels a question; a line with some values asks for no optional one.
        buyer.say("search", "Category (0-99): ")
        assert "Cancelled." in buyer.say("", f"buyer {name}> ")
        out = buyer.say("search 3", f"buyer {name}> ", timeout=8)  # not bare: no questions
        assert "Enter to skip" not in out and row(out, str(lamp), "lamp"), out

    with Terminal.start("seller_client.py", port_of(market.seller_server)) as sell:
        sell.expect("seller> ")
        sell.say(f"signup {unique('sid')} pw", "> ")
        out = sell.say("register pen 3 new 1 1", "> ", timeout=8)
        assert "Listed as item" in out and "Enter to skip" not in out, out
        out = sell.say("register pen 3 new 1", "Units for sale: ")
        assert "Keywords" not in out
        sell.say("2", "> ")  # quantity given; keywords are optional, so not asked
        assert sell.say("list", "> ").count(" pen ") == 2


# -- 3. Ctrl-C and Ctrl-D ----------------------------------------------------------------

def test_ctrl_c_cancels_and_ctrl_d_leaves(market, unique):
    name = unique("cole")
    market.buyer()("CreateAccount", username=name, password="pw")
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as buyer:
        buyer.expect("buyer> ")
        # Ctrl-C at the main prompt drops the half-typed line.
        os.write(buyer.write_fd, b"search 3")
        buyer.expect("search 3")
        buyer.press(CTRL_C, "buyer> ")
        assert "rate ITEM_ID up|down" in buyer.say("help rate", "buyer> ")
        # Ctrl-C at the password question.
        buyer.say(f"login {name}", "Password: ")
        buyer.press(CTRL_C, "buyer> ")
        assert "Logged in as" in buyer.say(f"login {name} pw", f"buyer {name}> ")
        # Ctrl-C at a question for a value, and twice in a row at the prompt.
        buyer.say("search", "Category (0-99): ")
        buyer.press(CTRL_C, f"buyer {name}> ")
        buyer.press(CTRL_C, f"buyer {name}> ")
        out = buyer.say("cart", f"buyer {name}> ")
        assert "Your cart is empty." in out and "There is no command" not in out, out
        assert buyer.proc.poll() is None
        # Ctrl-D at the main prompt logs out and leaves.
        buyer.press(CTRL_D, "Logged out.")
        assert buyer.proc.wait(15) == 0


# -- 4. messages -------------------------------------------------------------------------

def test_messages_say_what_is_wrong(market, unique):
    name = unique("mona")
    result = cli("buyer_client.py", port_of(market.buyer_server), f"signup {name} pw",
                 "search 3 toolongword", "buy A 4111111111111111 13/30", "purchases")
    errors = result.stderr.splitlines()
    assert len(errors) == 2, result.stderr
    assert "toolongword" in errors[0] and "1 to 8 characters" in errors[0]
    assert "month must be 01 to 12" in errors[1]
    assert result.stdout.endswith("No purchases yet.\n")
    assert result.returncode == 1


def test_the_server_rejects_a_month_13_with_that_reason(market, buyer, seller):
    buyer("AddItemToCart", item_id=listing(seller), quantity=1)
    error = failure(buyer, "MakePurchase", card_name="A", card_number="4111111111111111",
                    expiry="13/30")
    assert "month must be 01 to 12" in error.message, (error.code, error.message)


def test_rate_shows_up_or_down_everywhere(market):
    usage = "rate ITEM_ID up|down"
    out = cli("buyer_client.py", port_of(market.buyer_server), "help", "help rate").stdout
    assert re.search(r"^ +13  rate ITEM_ID up\|down  +vote", out, re.M), out  # the menu
    assert re.search(r"^rate ITEM_ID up\|down: .*\(ProvideFeedback\)", out, re.M), out
    helped = subprocess.run([sys.executable, str(ROOT / "buyer_client.py"), "--help"],
                            capture_output=True, text=True, timeout=30).stdout
    assert usage in helped
    cli_doc = (ROOT / "docs" / "cli.md").read_text()
    assert re.search(r"`rate ITEM_ID up\\?\|down`", cli_doc), "docs/cli.md's rate usage"


# -- 5. the unsaved cart ---------------------------------------------------------------

@pytest.mark.parametrize("ending", ["end of input", "quit"])
def test_leaving_with_an_unsaved_cart_says_so(market, buyer, seller, ending):
    item = listing(seller)
    lines = [f"login {buyer.name} pw", f"add {item} 1"] + (["quit"] if ending == "quit" else [])
    result = cli("buyer_client.py", port_of(market.buyer_server), *lines)
    assert result.returncode == 0, result
    note = result.stderr.strip()
    assert "unsaved" in note and "lost" in note and len(note.splitlines()) == 1, result.stderr

    result = cli("buyer_client.py", port_of(market.buyer_server), *lines[:2], "save",
                 *lines[2:])
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("leave, answer", [("logout", "y"), ("logout", "n"),
                                           ("quit", "y"), ("quit", "n")])
def test_terminal_offers_to_save_the_cart(market, buyer, seller, leave, answer):
    item = listing(seller)
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as term:
        term.expect("buyer> ")
        term.say(f"login {buyer.name} pw", f"{buyer.name}> ")
        term.say(f"add {item} 1", f"{buyer.name}> ")
        term.say(leave, "Save the cart first? [y/N] ")
        out = term.say(answer, "Logged out.")
        assert ("Cart saved." in out) == (answer == "y"), out
        if leave == "logout":
            term.say("quit", "quit")  # its echo
        assert term.proc.wait(15) == 0
    buyer.login(buyer.name)  # a new session: only the saved cart is there
    lines = buyer("DisplayCart")["cart"]["lines"]
    assert [line["item_id"] for line in lines] == ([item] if answer == "y" else [])


def test_terminal_does_not_ask_when_the_cart_is_saved(market, buyer, seller):
    item = listing(seller)
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as term:
        term.expect("buyer> ")
        term.say(f"login {buyer.name} pw", f"{buyer.name}> ")
        term.say(f"add {item} 1", f"{buyer.name}> ")
        term.say("save", f"{buyer.name}> ")
        out = term.say("logout", "buyer> ")
        assert "Logged out." in out and "Save the cart" not in out


# -- 6. several frontends -----------------------------------------------------------------

@pytest.mark.parametrize("how", ["--server", "BUYER_SERVERS"])
def test_a_second_frontend_takes_over_with_the_same_session(unique, how):
    market = start_market()
    second = None
    try:
        second = ServiceProcess("buyer_server.py", "--product-db", market.product_db.where,
                                "--customer-db", market.customer_db.where,
                                "--db-timeout", "2").start()
        seller = market.seller()
        seller.register(unique("sue"))
        vase, bowl = listing(seller, "vase", price=5), listing(seller, "bowl", price=3)
        name = unique("bea")
        market.buyer()("CreateAccount", username=name, password="pw")

        first = market.buyer_server.where
        if how == "--server":
            flags, env = ["--server", first, "--server", second.where], {}
        else:
            flags, env = [], {"BUYER_SERVERS": f"{first},{second.where}"}
        proc = subprocess.Popen([sys.executable, str(ROOT / "buyer_client.py"), *flags],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env={**os.environ, **env})
        buyer = Conversation(proc, proc.stdout.fileno(), proc.stdin.fileno())
        try:
            buyer.say(f"login {name} pw", "Logged in")
            buyer.say(f"add {vase} 2", "Total: $10.00")
            market.buyer_server.kill()  # SIGKILL: frontend A is gone
            if how == "--server":  # a read first, then a write
                out = moved = buyer.say("cart", "Total: $10.00")
                assert row(out, str(vase), "vase", "2", "$10.00")
                out = buyer.say(f"add {bowl} 1", "Total: $13.00")
            else:  # a write first: it could not be sent to A, so it goes to B
                moved = buyer.say(f"add {bowl} 1", "Total: $13.00")
                out = buyer.say("cart", "Total: $13.00")
            # One line says so, on the first command after A went away.
            assert f"line 3: {first} stopped answering; now using {second.where}." in moved
            assert "stopped answering" not in out  # once: the CLI stays with B
            assert row(out, str(vase), "vase", "2") and row(out, str(bowl), "bowl", "1")
            status = buyer.finish()
            assert b"Cannot reach" not in buyer.seen and b"No answer" not in buyer.seen
            assert b"stopped answering" not in buyer.seen  # said once only
            assert status == 0, buyer.seen
        finally:
            buyer.kill()
    finally:
        if second:
            second.stop()
        market.stop()


# -- 7. --help ------------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["buyer_client.py", "seller_client.py", "product_db.py"])
def test_help_has_no_empty_default(script):
    result = subprocess.run([sys.executable, str(ROOT / script), "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "default )" not in result.stdout and "default)" not in result.stdout, result.stdout
    if script.endswith("_client.py"):
        assert "--server HOST:PORT" in result.stdout
        role = script.split("_")[0].upper()
        assert f"{role}_SERVER" in result.stdout
