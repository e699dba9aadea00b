"""The CLI framework both CLIs are built from: commands, prompts, the read-run loop.

A command takes its values from the line or, at a terminal, asks for the
missing ones (the optional ones only for a bare command); checks each with the
contract's own validators (``market.fields``) before sending; sends one op
through ``market.cliclient.Frontends``; and shows the reply to a person
(``market.views``). Every failure becomes one sentence on stderr (a
``CliError``), and the CLI goes on. Ctrl-C cancels the line or question at
hand; Ctrl-D, quit or the end of input leave, logging out. ``cli_main`` runs
one CLI.
"""
from __future__ import annotations

import argparse
import getpass
import os
import shlex
import signal
import socket
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from market.cliclient import CliError, Frontends, NotSent, WrongServer
from market.client import NoAnswer, parse_address
from market.fields import PASSWORD, USERNAME
from market.server import env_default
from market.views import table
from protocol import ApiError, Omittable, OneOf, Validator, json_safe

QUIT_WORDS = ("quit", "exit")
HELP_WORDS = ("help", "?", "menu")
MENU_USAGE_WIDTH = 36  # so that the menu fits 80 columns
CLI_SYNTAX = """\
At a terminal the CLI shows this menu and asks for the values left off the line
(a bare command asks for its optional values too; Enter alone cancels, or skips
an optional value); passwords are read without echo. When standard input is not
a terminal, it reads one command per line with its values on the line, prints
only results, writes errors to stderr and exits with status 1 if any command
failed (2 if the server is not a {role} frontend):

  printf 'login alice pw\\n{example}\\n' \\
      | python3 {role}_client.py

Quote values that contain spaces ("desk lamp"); keywords are comma-separated
(desk,light); prices are in dollars (17.50). Lines starting with # are skipped.
At a terminal Ctrl-C cancels the line or question at hand; quit, Ctrl-D and the
end of the input leave, logging out first (after offering to save a changed cart)."""


def read_price(text: str) -> Decimal:
    """'17.50' or '$17.50' -> Decimal; ``Price`` then checks it.

    A comma is refused rather than guessed at: '17,50' may mean 17.50 or 1750.
    """
    return Decimal(text.strip().removeprefix("$"))


def read_words(text: str) -> list[str]:
    """'desk,light' or 'desk light' -> ['desk', 'light']; ``Keywords`` then checks it."""
    return text.replace(",", " ").split()


@dataclass
class Arg:
    """One value of a command: the op's field, how to ask for it, read it and check it."""

    name: str
    prompt: str
    check: Validator
    read: Callable[[str], Any] = str
    secret: bool = False  # asked for without echo
    prompted: bool = True  # asked for at a terminal when left off the line
    metavar: str = ""  # how usage shows it (default: the name in capitals)

    @property
    def usage(self) -> str:
        shown = self.metavar or self.name.upper()
        return f"[{shown}]" if self.check.optional else shown

    def parse(self, text: str) -> Any:
        """Text -> the value to send, within the spec's limits, or ``CliError``."""
        try:
            value = self.read(text)
        except (ValueError, ArithmeticError):
            value = text  # not even the right type: the check says what is expected
        try:
            self.check(self.name.upper(), value)
        except ApiError as error:  # "'PRICE' must be ..." -> "PRICE must be ...", as in usage
            raise CliError(error.message.replace("'", "")) from None
        return json_safe(value)


@dataclass
class Command:
    """One CLI command: its name, the spec op it sends, its values, how to show the reply."""

    name: str
    op: str
    summary: str
    args: tuple[Arg, ...] = ()
    show: Callable[[dict], str] = lambda result: "Done."
    read_only: bool = False  # a lost reply may be retried (the op changes nothing)
    needs_session: bool = True
    run: Callable[["Shell", dict], str] | None = None  # replaces sending ``op`` + ``show``
    paged: bool = False  # a list read a page at a time (its args: ``MORE``)
    cart: str = ""  # "changed" if it changes the session's cart, "saved" if it saves it

    def usage(self) -> str:
        return " ".join([self.name, *(arg.usage for arg in self.args)])


MORE = Arg("more", "more: the page after the one shown last", Omittable(OneOf(("more",)), ""),
           str.lower, prompted=False)


def menu(commands: list[Command]) -> str:
    """The numbered commands; a usage too long for the column gets a line of its own."""
    entries = [(str(number), command.usage(), command.summary)
               for number, command in enumerate(commands, 1)]
    entries += [("", "help [COMMAND]", "this list, or one command in detail"),
                ("", "quit", "log out and leave (also Ctrl-D)")]
    width = max(len(usage) for _, usage, _ in entries if len(usage) <= MENU_USAGE_WIDTH)
    lines = []
    for number, usage, summary in entries:
        if len(usage) > width:
            lines.append(f"  {number:>2}  {usage}")
            number, usage = "", ""
        lines.append(f"  {number:>2}  {usage:<{width}}  {summary}")
    return "\n".join(lines)


class Shell:
    """One CLI's loop: reads command lines, runs them, and holds the session token.

    The token lives only in this process; ``close`` logs it out.
    """

    def __init__(self, role: str, commands: list[Command], frontends: Frontends,
                 interactive: bool) -> None:
        self.role = role
        self.commands = commands
        self.frontends = frontends
        self.interactive = interactive
        self.session: str | None = None
        self.cursors: dict[str, str | None] = {}  # op -> the next of the page shown last
        self.unsaved_cart = False  # the session's cart changed since it was last saved
        self.username = ""
        self.failures = 0
        self.remember: Callable[[str], None] = lambda line: None  # readline's history
        self.by_name: dict[str, Command] = {}
        for number, command in enumerate(commands, 1):
            for key in (str(number), command.name, command.op.lower()):
                self.by_name[key] = command

    def loop(self, example: str) -> int:
        """Run commands until quit or the end of input, log out, return the exit status."""
        try:
            if self.interactive:
                print(self.greeting(example))
                while self.read_and_run():
                    pass
                self.offer_to_save()
            else:
                for line in sys.stdin:
                    if not self.run_line(line):
                        break
                self.offer_to_save()
        except (EOFError, KeyboardInterrupt):
            if self.interactive:
                print()
        except WrongServer as error:
            self.fail(str(error))
            return 2
        finally:
            self.close()
        return 1 if self.failures and not self.interactive else 0

    def read_and_run(self) -> bool:
        """At a terminal: read one command line and run it; False on quit or Ctrl-D.
        Ctrl-C cancels the line or the question being asked, as in a shell."""
        try:
            line = input(self.prompt())
            self.remember(line)  # command lines only: not answers such as card numbers
            return self.run_line(line)
        except KeyboardInterrupt:
            print("^C")
            return True
        except EOFError:
            print()
            return False

    def greeting(self, example: str) -> str:
        others = len(self.frontends.addresses) - 1
        lines = [f"Marketplace {self.role} CLI, talking to {self.frontends.describe()}"
                 + (f" (and {others} more if it stops answering)." if others else "."),
                 "Type a number or a command; values may follow on the same line, "
                 f"e.g. {example}", "", menu(self.commands), ""]
        try:
            socket.create_connection(self.frontends.addresses[0], timeout=2).close()
        except OSError:
            lines += [f"Note: {self.frontends.describe(0)} does not answer yet; "
                      "commands will work once it is up.", ""]
        return "\n".join(lines)

    def prompt(self) -> str:
        return f"{self.role} {self.username}> " if self.session else f"{self.role}> "

    def run_line(self, line: str) -> bool:
        """Run one command line; False when it says quit."""
        if line.lstrip().startswith("#"):
            return True
        try:
            words = shlex.split(line)
        except ValueError:
            self.fail('A quote is not closed; quote values with spaces like "desk lamp".')
            return True
        if not words:
            return True
        name = words[0].lower()
        if name in QUIT_WORDS:
            if len(words) > 1:
                self.fail(f"{name} takes no values.")
                return True
            return False
        if name in HELP_WORDS:
            print(self.help(words[1:]))
            return True
        command = self.by_name.get(name)
        if command is None:
            self.fail(f"There is no command '{words[0]}'; type help to see them all.")
            return True
        try:
            print(self.execute(command, words[1:]))
        except WrongServer:
            raise
        except CliError as error:
            self.fail(str(error))
        return True

    def fail(self, message: str) -> None:
        self.failures += 1
        sys.stdout.flush()  # keep results and errors in order when both go to one place
        print(message, file=sys.stderr)

    def help(self, words: list[str]) -> str:
        if not words:
            return menu(self.commands)
        command = self.by_name.get(words[0].lower())
        if command is None:
            return f"There is no command '{words[0]}'."
        rows = [[arg.usage, arg.prompt] for arg in command.args]
        return "\n".join([f"{command.usage()}: {command.summary} ({command.op}).",
                          *("  " + line for line in table(rows).splitlines())])

    def execute(self, command: Command, values: list[str]) -> str:
        """Check the values (asking for missing ones at a terminal), run, describe the result."""
        if command.needs_session and not self.session:
            raise CliError("Log in first: login USERNAME PASSWORD (or signup to make an account).")
        if len(values) > len(command.args):
            raise CliError(f"Too many values; usage: {command.usage()} "
                           '(quote values with spaces, like "desk lamp").')
        args = {}
        bare = not values  # at a terminal, only a bare command asks for optional values too
        for position, arg in enumerate(command.args):
            if position < len(values):
                args[arg.name] = arg.parse(values[position])
            elif self.interactive and arg.prompted and (bare or not arg.check.optional):
                args[arg.name] = self.ask(arg)
            elif arg.check.optional:
                args[arg.name] = arg.check.default
            else:
                raise CliError(f"{arg.name.upper()} is missing; usage: {command.usage()}.")
        if command.paged:
            return self.next_page(command, args)
        if command.run:
            return command.run(self, args)
        result = self.call(command.op, args, command.read_only)
        if command.cart:
            self.unsaved_cart = command.cart == "changed"
        return command.show(result)

    def ask(self, arg: Arg) -> Any:
        """Ask for one value until it passes its check; Enter alone skips or cancels."""
        hint = " (Enter to skip)" if arg.check.optional else ""
        while True:
            try:
                text = (getpass.getpass if arg.secret else input)(f"  {arg.prompt}{hint}: ")
            except EOFError:
                print()
                raise CliError("Cancelled.") from None
            if not text:
                if arg.check.optional:
                    return arg.check.default
                raise CliError("Cancelled.")
            try:
                return arg.parse(text)
            except CliError as error:
                print(f"  {error}", file=sys.stderr)

    def next_page(self, command: Command, args: dict) -> str:
        """A paged list (a ``paged`` command): the first page, or with
        ``more`` the one after the page shown last."""
        after = None
        if args["more"]:
            after = self.cursors.get(command.op)
            if after is None:
                raise CliError(f"Nothing more to show; '{command.name}' shows the first page.")
        result = self.call(command.op, {} if after is None else {"after": after},
                           read_only=True)
        self.cursors[command.op] = result.get("next")
        more = f"\nThere is more: type '{command.name} more'." if result.get("next") else ""
        return command.show(result) + more

    def call(self, op: str, args: dict, read_only: bool = False) -> dict:
        """Send one op with the session, if any; return its result or raise ``CliError``.

        A write whose reply is lost is not resent (reads are asked again, of the next
        frontend if there are several).
        """
        try:
            return self.frontends.call(op, args, self.session, read_only)
        except NotSent:
            raise CliError(f"Cannot reach {self.frontends.describe()}; is it running? Nothing "
                           "was sent; try again once it is back.") from None
        except NoAnswer:
            server = self.frontends.describe()
            if read_only:
                raise CliError(f"No answer from {server}; try again.") from None
            raise CliError(f"No answer from {server}, so it is unknown whether {op} "
                           "took effect; check before trying it again.") from None
        except WrongServer:
            raise
        except ApiError as error:
            raise CliError(self.explain(error)) from None

    def explain(self, error: ApiError) -> str:
        """A server's error reply as one sentence for a person."""
        if error.code == "invalid_session":
            self.forget_session()
            return "You are not logged in any more (the session ended or timed out); log in again."
        if error.code == "unavailable":
            return "The marketplace cannot reach one of its databases right now; try again soon."
        if error.code == "internal":
            return "The server hit an internal error; try again, and report it if it persists."
        return " ".join(error.message.split()) or "The server refused that."

    def signup(self, args: dict) -> str:
        user_id = self.call("CreateAccount", args)[f"{self.role}_id"]
        created = f"Created {self.role} account {args['username']} (id {user_id})."
        return created + "\n" + self.login(args)

    def login(self, args: dict) -> str:
        result = self.call("Login", args)
        self.close_session()  # the previous one, if any
        self.session, self.username = result["session"], args["username"]
        return f"Logged in as {self.username} ({self.role} id {result[f'{self.role}_id']})."

    def logout(self, args: dict) -> str:
        self.offer_to_save()
        self.call("Logout", {})
        self.forget_session()
        return "Logged out."

    def offer_to_save(self) -> None:
        """Before logging out: say that unsaved cart changes will be lost and, at a
        terminal, offer to save them first."""
        if not (self.session and self.unsaved_cart):
            return
        if not self.interactive:
            print("Note: the cart's unsaved changes are lost at logout (save keeps them).",
                  file=sys.stderr)
            return
        try:
            answer = input("Your cart has changes that are not saved and will be lost. "
                           "Save the cart first? [y/N] ")
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if answer.strip().lower() in ("y", "yes"):
            try:
                self.call("SaveCart", {})
                self.unsaved_cart = False
                print("Cart saved.")
            except CliError as error:
                print(error, file=sys.stderr)

    def close_session(self) -> None:
        """Log out without a word, if logged in (the token is dropped either way)."""
        if self.session:
            try:
                self.call("Logout", {})
            except CliError:
                pass
            self.forget_session()

    def forget_session(self) -> None:
        self.session, self.username = None, ""
        self.cursors.clear()
        self.unsaved_cart = False

    def close(self) -> None:
        logged_in = bool(self.session)
        self.close_session()  # before printing: the terminal may be gone (SIGHUP)
        self.frontends.close()
        if logged_in and self.interactive:
            print("Logged out.")


def account_commands(role: str) -> list[Command]:
    """signup, login and logout: the same on both sides."""
    credentials = (Arg("username", "Username", USERNAME),
                   Arg("password", "Password", PASSWORD, secret=True))
    return [
        Command("signup", "CreateAccount", f"create a {role} account and log in", credentials,
                needs_session=False, run=Shell.signup),
        Command("login", "Login", "log in", credentials, needs_session=False, run=Shell.login),
        Command("logout", "Logout", "log out", run=Shell.logout),
    ]


def cli_main(role: str, commands: list[Command], env_prefix: str, port: int, example: str,
             argv: list[str] | None = None) -> None:
    """Parse flags, then run the CLI of ``role`` on stdin until quit; exits with its status."""
    commands = account_commands(role) + commands
    parser = argparse.ArgumentParser(
        description=f"The {role}'s command line for the marketplace.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands (a number or a name, then its values):\n" + menu(commands) + "\n\n"
               + CLI_SYNTAX.format(role=role, example=example))
    env_default(parser, "--host", f"{env_prefix}_HOST", "127.0.0.1", f"{role} server host")
    env_default(parser, "--port", f"{env_prefix}_PORT", port, f"{role} server port", type=int)
    servers = os.environ.get(f"{env_prefix}S", "")
    parser.add_argument("--server", action="append", type=parse_address, metavar="HOST:PORT",
                        help=f"a {role} frontend to use; repeat it for several, used in turn "
                             "when one stops answering (env "
                             f"{env_prefix}S=HOST:PORT,HOST:PORT; default --host and --port)")
    args = parser.parse_args(argv)
    try:
        addresses = args.server or [parse_address(text) for text in servers.split(",") if text]
    except argparse.ArgumentTypeError as error:
        parser.error(f"{env_prefix}S: {error}")
    sys.stdout.reconfigure(line_buffering=True)  # each result as soon as it is known
    shell = Shell(role, commands, Frontends(role, addresses or [(args.host, args.port)]),
                  sys.stdin.isatty())
    for name in ("SIGTERM", "SIGHUP"):  # log out on these too
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit_on_signal)
    if shell.interactive:
        shell.remember = _use_readline([command.name for command in commands]
                                       + [*QUIT_WORDS, "help"])
    try:
        status = shell.loop(example)
    except KeyboardInterrupt:  # a second Ctrl-C while logging out
        status = 130
    sys.exit(status)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _use_readline(words: list[str]) -> Callable[[str], None]:
    """Line editing and Tab completion of command names, where readline exists.

    Returns the function that adds a line to the history (a no-op without readline).
    """
    try:
        import readline
    except ImportError:
        return lambda line: None

    def complete(text: str, state: int) -> str | None:
        matches = [word for word in words if word.startswith(text)]
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    libedit = "libedit" in (readline.__doc__ or "")
    readline.parse_and_bind("bind ^I rl_complete" if libedit else "tab: complete")
    readline.set_auto_history(False)
    return lambda line: readline.add_history(line) if line.strip() else None
