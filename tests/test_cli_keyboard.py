"""What a person at the keyboard tripped on (issue 19), one test or more per item: the
pipe items through pipes, the terminal items through a pseudo-terminal."""
from __future__ import annotations

import os
import subprocess
import sys

from helpers.cli import (
    CTRL_C,
    CTRL_D,
    Terminal,
    buyer_cli,
    cli,
    free_port,
    ok,
    port_of,
    row,
    seller_cli,
)
from helpers.market import ROOT, listing

UP_ARROW, TAB = b"\x1b[A", b"\t"


def saved_items(market, name: str) -> list[int]:
    """The item ids of ``name``'s saved cart (a new session starts with it)."""
    api = market.buyer()
    api.login(name)
    return [line["item_id"] for line in api("DisplayCart")["cart"]["lines"]]


# -- 1. the question before logging out --------------------------------------------------

def test_ctrl_c_at_the_save_question_keeps_the_session_and_the_cart(market, buyer, seller):
    item = listing(seller)
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as term:
        term.expect("buyer> ")
        term.say(f"login {buyer.name} pw", f"{buyer.name}> ")
        term.say(f"add {item} 1", f"{buyer.name}> ")
        term.say("logout", "Save the cart first? [y/N] ")
        out = term.press(CTRL_C, f"buyer {buyer.name}> ")  # still logged in
        assert "Logged out" not in out, out
        assert row(term.say("cart", f"{buyer.name}> "), str(item), "thing")  # cart kept
        term.say("quit", "Save the cart first? [y/N] ")
        out = term.say("maybe", "[y/N] ")  # anything but y or n is asked again
        assert "Please answer y" in out, out
        out = term.say("y", "Logged out.")
        assert "Cart saved." in out
        assert term.proc.wait(15) == 0
    assert saved_items(market, buyer.name) == [item]


# -- 2. switching user -----------------------------------------------------------------------

def test_switching_user_from_a_pipe_says_who_was_logged_out(market, buyer, seller, unique):
    item, eve = listing(seller), unique("eve")
    result = buyer_cli(market, f"login {buyer.name} pw", f"add {item} 1", f"signup {eve} pw",
                       "cart")
    assert result.returncode == 0, result
    assert f"Logged out {buyer.name}.\nLogged in as {eve}" in result.stdout
    assert result.stdout.endswith("Your cart is empty.\n")  # eve's
    assert result.stderr == ("line 3: Note: the cart's unsaved changes are lost at logout "
                             "(save keeps them).\n")


def test_switching_user_at_a_terminal_offers_to_save(market, buyer, seller, unique):
    item, eve = listing(seller), unique("eve")
    market.buyer()("CreateAccount", username=eve, password="pw")
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as term:
        term.expect("buyer> ")
        term.say(f"login {buyer.name} pw", f"{buyer.name}> ")
        term.say(f"add {item} 1", f"{buyer.name}> ")
        term.say(f"login {eve} pw", "Save the cart first? [y/N] ")
        out = term.say("y", f"buyer {eve}> ")
        assert f"Cart saved.\r\nLogged out {buyer.name}.\r\nLogged in as {eve}" in out, out
    assert saved_items(market, buyer.name) == [item]


# -- 4. the wrong kind of server, before the menu ---------------------------------------------

def test_wrong_server_is_named_before_the_menu(market):
    with Terminal.start("buyer_client.py", port_of(market.seller_server)) as term:
        out = term.expect("nothing was sent.")
        assert "is the seller frontend, not the buyer frontend" in out
        assert "signup" not in out and "buyer>" not in out  # no menu, no prompt
        assert term.proc.wait(15) == 2


# -- 5. a search that reached its limit -------------------------------------------------------

def test_search_says_when_it_reached_its_limit(market, seller, unique):
    word = unique("w")[:8]
    for name in ("pen", "ink", "nib"):
        seller("RegisterItemForSale", name=name, category=6, keywords=[word], condition="new",
               price=1, quantity=1)
    out = ok(buyer_cli(market, f"signup {unique('sy')} pw", f"search 6 {word} 2", f"search 6 {word} 3",
                       f"search 6 {word} 4", f"search 6 {word} 500"))
    cut = [line for line in out.splitlines() if "there may be more" in line]
    assert cut == ["Showing the first 2 matches; there may be more: narrow the search with "
                   "keywords, or ask for up to 500 with a limit (search CATEGORY KEYWORDS "
                   "LIMIT).",
                   "Showing the first 3 matches; there may be more: narrow the search with "
                   "keywords, or ask for up to 500 with a limit (search CATEGORY KEYWORDS "
                   "LIMIT)."], out  # 4 and 500 found all 3: no word


# -- 6. failover ----------------------------------------------------------------------------------

def test_every_frontend_down_is_said_once_with_all_of_them():
    first, second = free_port(), free_port()
    result = cli("buyer_client.py", None, "login bob pw", "signup bob pw",
                 env={"BUYER_SERVERS": f"127.0.0.1:{first},127.0.0.1:{second}"})
    assert result.returncode == 1
    line = (f"None of the 2 buyer frontends answers (127.0.0.1:{first}, 127.0.0.1:{second}). "
            "Nothing was sent; try again once it is back.")
    assert result.stderr == f"line 1: {line}\nline 2: {line}\n"


def test_a_failover_is_said_in_one_line(market, unique):
    dead = free_port()
    result = cli("buyer_client.py", None, f"signup {unique('fay')} pw", "cart",
                 env={"BUYER_SERVERS": f"127.0.0.1:{dead},{market.buyer_server.where}"})
    assert result.returncode == 0, result
    assert result.stderr == (f"line 1: 127.0.0.1:{dead} stopped answering; now using "
                             f"{market.buyer_server.where}.\n")
    assert "Your cart is empty." in result.stdout


# -- 7. prices in as they are shown ----------------------------------------------------------

def test_prices_are_read_as_they_are_shown(market, unique):
    result = seller_cli(market, f"signup {unique('pat')} pw",
                        "register safe 3 new $1,000.00 1", "register bin 3 new 1,250.50 1",
                        "register box 3 new 17.5 1", "register jar 3 new 1_000 1",
                        "register cup 3 new 1e2 1", "register tin 3 new nan 1", "list")
    assert result.returncode == 1
    assert row(result.stdout, "safe", "$1,000.00") and row(result.stdout, "bin", "$1,250.50")
    assert row(result.stdout, "box", "$17.50")
    refusal = ("Price in dollars must be a number above 0 and at most 1,000,000 with at most "
               "two decimals (like 17.50 or $1,000.00).")
    assert result.stderr.splitlines() == [f"line {n}: {refusal}" for n in (5, 6, 7)]
    assert "jar" not in result.stdout and "cup" not in result.stdout


# -- 8. words ------------------------------------------------------------------------------------

def test_messages_use_the_prompts_words(market, unique):
    result = buyer_cli(market, "logout", f"signup {unique('wes')} pw", "add 1 0", "item 0",
                       "purchases less", "search 3 desk 501",
                       "buy A 4111111111111111 13/30")
    assert result.stderr.splitlines() == [
        "line 1: You are not logged in.",
        "line 3: Units must be a whole number from 1 to 1,000,000.",
        "line 4: Item id must be a whole number from 1 up.",
        "line 5: Only the word more may follow; with it, the next page is shown.",
        "line 6: The limit must be a whole number from 1 to 500.",
        "line 7: The card would be rejected: the expiry's month must be 01 to 12."]
    helped = subprocess.run([sys.executable, str(ROOT / "seller_client.py"), "--help"],
                            capture_output=True, text=True, timeout=30).stdout
    assert "list [more]" in helped and "[MORE]" not in helped
    result = seller_cli(market, f"signup {unique('val')} pw", "register pen 3 new 1 1000001")
    assert result.stderr == ("line 2: Units for sale must be a whole number from 1 to "
                             "1,000,000.\n")


# -- 9. cart replies that say what happened --------------------------------------------------

def test_cart_replies_say_what_happened(market, buyer, seller):
    item, other = listing(seller), listing(seller, "other")
    result = buyer_cli(market, f"login {buyer.name} pw", "save", "clear", f"add {item} 1",
                       f"remove {other} 1", f"remove {item} 3", "cart")
    out = result.stdout
    assert "Saved an empty cart: your next login starts with an empty cart." in out
    assert "Your cart was already empty." in out and "Cart emptied" not in out
    assert f"Your cart held only 1 of item {item}; took them all out." in out
    assert result.stderr == f"line 5: Item {other} is not in your cart; nothing was taken out.\n"
    assert out.endswith("Your cart is empty.\n")


def test_no_question_when_the_cart_is_as_saved(market, buyer, seller):
    item = listing(seller)
    buyer("AddItemToCart", item_id=item, quantity=1)
    buyer("SaveCart")
    # From a pipe: clearing an empty cart, or adding and taking out again, changes nothing.
    assert ok(buyer_cli(market, f"login {buyer.name} pw", f"remove {item} 1", f"add {item} 1"))
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as term:
        term.expect("buyer> ")
        term.say(f"login {buyer.name} pw", f"{buyer.name}> ")
        term.say(f"remove {item} 1", f"{buyer.name}> ")
        term.say("clear", f"{buyer.name}> ")
        term.say(f"add {item} 1", f"{buyer.name}> ")  # as saved again
        out = term.press(CTRL_D, "Logged out.")
        assert "Save the cart" not in out, out
        assert term.proc.wait(15) == 0


# -- 10. terminal manners ----------------------------------------------------------------------

def test_ctrl_c_and_ctrl_d_at_a_value_question_both_say_cancelled(market):
    with Terminal.start("seller_client.py", port_of(market.seller_server)) as term:
        term.expect("seller> ")
        for key in (CTRL_C, CTRL_D):
            term.say("signup", "Username: ")
            out = term.press(key, "seller> ")
            assert "Cancelled." in out, (key, out)


def test_tab_completes_op_names_and_words(market, buyer):
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as term:
        term.expect("buyer> ")
        term.say(f"login {buyer.name} pw", f"{buyer.name}> ")
        os.write(term.write_fd, b"ProvideF")
        term.press(TAB, "ProvideFeedback ")
        os.write(term.write_fd, b"999999 d")
        term.press(TAB, "down ")
        out = term.say("", f"{buyer.name}> ")  # it ran: the server's answer, not a typo
        assert "There is no command" not in out and "must be" not in out, out
        os.write(term.write_fd, b"rat")
        out = term.press(TAB + TAB, "rating")  # two commands begin so: the second Tab lists
        assert "rate" in out, out
        term.press(CTRL_C, f"{buyer.name}> ")


def test_a_password_on_the_line_stays_out_of_the_history(market, buyer):
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as term:
        term.expect("buyer> ")
        term.say(f"login {buyer.name} pw", f"{buyer.name}> ")
        term.press(UP_ARROW, f"login {buyer.name}")
        out = term.say("", "Password: ")  # the recalled line had no password: asked for
        assert f"login {buyer.name} pw" not in out
        term.say("pw", f"{buyer.name}> ")


def test_signup_at_a_terminal_asks_the_password_twice(market, unique):
    name = unique("tia")
    with Terminal.start("buyer_client.py", port_of(market.buyer_server)) as term:
        term.expect("buyer> ")
        term.say(f"signup {name}", "Password: ")
        term.say("one", "Password again: ")
        assert "The two differ" in term.say("two", "Password: ")
        term.say("pw", "Password again: ")
        assert f"Logged in as {name}" in term.say("pw", f"{name}> ")
    market.buyer().login(name, "pw")


# -- 11. piped errors name their line ---------------------------------------------------------

def test_a_rerun_walkthrough_names_the_lines(market, unique):
    name = unique("alice")
    ok(seller_cli(market, f"signup {name} secret"))
    result = seller_cli(market, f"signup {name} secret", "register lamp 3 new 17.50 5", "list")
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == \
        ["line 1", "line 2", "line 3"], result.stderr
    assert "is taken" in result.stderr.splitlines()[0]
