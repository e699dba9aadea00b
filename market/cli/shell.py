"""The CLI framework both CLIs are built from: the read-run loop and the session.

A command (``market.cli.commands``) takes its values from the line or, at a
terminal, asks for the missing ones (the optional ones only for a bare
command; ``market.cli.prompts``); checks them before sending; sends one op through
``market.cli.frontends.Frontends``; and shows the reply to a person
(``market.cli.views``). Every failure becomes one sentence on stderr (a
``CliError``; from a pipe, naming its input line: "line 2: ..."), and the CLI
goes on. Ctrl-C cancels the line or question at hand; Ctrl-D, quit or the end
of input leave, logging out. What one CLI adds around its session (the buyer:
its cart) comes in as ``SessionHooks``. ``cli_main`` runs one CLI.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from typing import Any

from market.cli import prompts
from market.cli.commands import HELP_WORDS, QUIT_WORDS, Arg, Command, CommandSet, menu
from market.cli.frontends import Frontends
from market.cli.views import shown
from market.config import DEFAULT_HOST
from market.errors import (
    Cancelled,
    CliError,
    NotSent,
    SessionEnded,
    TlsError,
    Unsure,
    WrongServer,
)
from market.fields import LOGIN_USERNAME, PASSWORD, USERNAME
from market.net.client import parse_address
from market.net.flags import add_tls_ca_flag
from market.net.tls import client_context

CLI_SYNTAX = """\
At a terminal the CLI shows this menu and asks for the values left off the line
(a bare command asks for its optional values too; Enter alone cancels, or skips
an optional value); passwords are read without echo. When standard input is not
a terminal, it reads one command per line with its values on the line, prints
only results, writes errors to stderr (each naming its input line: "line 2: ...")
and exits with status 1 if any command failed (2 if the server is not a {role}
frontend):

  printf 'login alice pw\\n{example}\\n' \\
      | python3 {role}_client.py

Quote values that contain spaces ("desk lamp"); keywords are comma-separated
(desk,light); prices are in dollars (17.50, $1,000.00). Lines starting with # are
skipped. At a terminal Ctrl-C cancels the line or question at hand; quit, Ctrl-D
and the end of the input leave, logging out first."""


class SessionHooks:
    """What one CLI adds around a session; this default adds nothing.

    ``before`` and ``after`` wrap every command that sends its op (not login,
    logout or the paged lists); ``may_end`` is asked before the session ends
    (logout, another login, leaving) and may keep it (False); ``forget`` is told
    when it has ended; ``unsure`` when a change's outcome is unknown.
    """

    def before(self, shell: "Shell", command: Command, args: dict) -> None:
        """Raise ``CliError`` to send nothing."""

    def after(self, shell: "Shell", command: Command, args: dict, result: dict,
              text: str) -> str:
        """The text to show for ``result`` (``text``: what the command shows)."""
        return text

    def may_end(self, shell: "Shell") -> bool:
        return True

    def forget(self) -> None:
        pass

    def unsure(self) -> None:
        pass


class Shell:
    """One CLI's loop: reads command lines, runs them, and holds the session token.

    The token lives only in this process; ``close`` logs it out.
    """

    def __init__(self, role: str, commands: list[Command], frontends: Frontends,
                 interactive: bool, hooks: SessionHooks | None = None) -> None:
        self.role = role
        self.commands = CommandSet(commands)
        self.frontends = frontends
        self.interactive = interactive
        self.hooks = hooks or SessionHooks()
        self.session: str | None = None
        self.username = ""
        self.cursors: dict[str, str | None] = {}  # op -> the next of the page shown last
        self.failures = 0
        self.line_number = 0  # of the piped line being run (0 at a terminal)
        self.remember = lambda line: None  # adds a line to readline's history
        frontends.on_move = self.note

    # -- the loop -------------------------------------------------------------------

    def loop(self, example: str) -> int:
        """Run commands until quit or the end of input, log out, return the exit status."""
        try:
            self.greet(example)
            if self.interactive:
                self.read_lines()
            else:
                for self.line_number, line in enumerate(sys.stdin, 1):
                    if not self.run_line(line):
                        break
                self.line_number = 0
                self.may_leave()
        except KeyboardInterrupt:  # from a pipe: SIGINT
            pass
        except WrongServer as error:
            self.fail(str(error))
            return 2
        finally:
            self.close()
        return 1 if self.failures and not self.interactive else 0

    def greet(self, example: str) -> None:
        """Ask the frontend what it is (``WrongServer`` stops here); at a terminal, the menu."""
        try:
            self.frontends.check()
            note = []
        except NotSent:
            note = [f"Note: {self.frontends.describe()} does not answer yet; commands will "
                    "work once it is up.", ""]
        if self.interactive:
            print("\n".join([greeting(self.role, self.frontends, self.commands.all, example),
                             *note]))

    def read_lines(self) -> None:
        """At a terminal: read and run command lines until one leaves. Ctrl-C cancels the
        line or the question being asked, as in a shell; Ctrl-D is quit."""
        while True:
            try:
                try:
                    line = input(self.prompt())
                    self.remember(self.commands.for_history(line))
                except EOFError:
                    print()
                    line = "quit"
                if not self.run_line(line) and self.may_leave():
                    return
            except KeyboardInterrupt:
                print("^C")

    def may_leave(self) -> bool:
        return not self.session or self.hooks.may_end(self)

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
            if len(words) == 1:
                return False
            self.fail(f"{name} takes no values.")
        elif name in HELP_WORDS:
            print(self.commands.help(words[1:]))
        elif self.commands.find(name) is None:
            self.fail(f"There is no command '{words[0]}'; type help to see them all.")
        else:
            try:
                print(self.execute(self.commands.find(name), words[1:]))
            except WrongServer:
                raise
            except CliError as error:
                self.fail(str(error))
        return True

    def fail(self, message: str) -> None:
        self.failures += 1
        self.note(message)

    def note(self, message: str) -> None:
        """One line on stderr, naming the piped input line it is about."""
        sys.stdout.flush()  # keep results and errors in order when both go to one place
        where = f"line {self.line_number}: " if self.line_number else ""
        print(where + message, file=sys.stderr)

    # -- one command ------------------------------------------------------------------

    def execute(self, command: Command, values: list[str]) -> str:
        """Check the values (asking for missing ones at a terminal), run, describe the result."""
        if command.needs_session and not self.session:
            raise CliError("Log in first: login USERNAME PASSWORD (or signup to make an account).")
        args = self.values(command, values)
        if command.paged:
            return self.next_page(command, args)
        if command.run:
            return command.run(self, args)
        self.hooks.before(self, command, args)
        result = self.call(command.op, args, command.check.format(**args))
        return self.hooks.after(self, command, args, result, command.show(result))

    def values(self, command: Command, values: list[str]) -> dict:
        if len(values) > len(command.args):
            raise CliError(f"Too many values; usage: {command.usage()} "
                           '(quote values with spaces, like "desk lamp").')
        args = {}
        bare = not values  # at a terminal, only a bare command asks for optional values too
        for position, arg in enumerate(command.args):
            if position < len(values):
                args[arg.name] = arg.parse(values[position])
            elif self.interactive and arg.prompted and (bare or not arg.check.optional):
                args[arg.name] = prompts.ask_value(arg)
            elif arg.check.optional:
                args[arg.name] = arg.check.default
            else:
                raise CliError(f"{arg.usage} is missing; usage: {command.usage()}.")
        return args

    def next_page(self, command: Command, args: dict) -> str:
        """A paged list (a ``paged`` command): the first page, or with
        ``more`` the one after the page shown last."""
        after = None
        if args["more"]:
            after = self.cursors.get(command.op)
            if after is None:
                raise CliError(f"Nothing more to show; '{command.name}' shows the first page.")
        result = self.call(command.op, {} if after is None else {"after": after})
        self.cursors[command.op] = result.get("next")
        more = f"\nThere is more: type '{command.name} more'." if result.get("next") else ""
        return command.show(result) + more

    def call(self, op: str, args: dict, check: str = "") -> dict:
        """Send one op with the session, if any (``Frontends.send``; ``check``: the
        command that shows whether a change took effect, should no frontend tell)."""
        try:
            return self.frontends.send(op, args, self.session, check)
        except SessionEnded:
            self.forget_session()
            raise
        except Unsure:
            self.hooks.unsure()
            raise

    # -- the session -------------------------------------------------------------------

    def signup(self, args: dict) -> str:
        self.ready_to_switch()
        user_id = self.call("CreateAccount", args, "login")[f"{self.role}_id"]
        created = f"Created {self.role} account {shown(args['username'])} (id {user_id})."
        return created + "\n" + self.log_in(args)

    def login(self, args: dict) -> str:
        self.ready_to_switch()
        return self.log_in(args)

    def ready_to_switch(self) -> None:
        """Before logging in while logged in: the session's hooks may keep it (Ctrl-C)."""
        if self.session and not self.hooks.may_end(self):
            raise Cancelled()

    def log_in(self, args: dict) -> str:
        result = self.call("Login", args)
        previous = self.username if self.session else ""
        self.close_session()
        self.session, self.username = result["session"], args["username"]
        left = f"Logged out {shown(previous)}.\n" if previous else ""
        user_id = result[f"{self.role}_id"]
        return left + f"Logged in as {shown(self.username)} ({self.role} id {user_id})."

    def logout(self, args: dict) -> str:
        if not self.session:
            raise CliError("You are not logged in.")
        if not self.hooks.may_end(self):
            raise Cancelled()
        try:
            self.call("Logout", {})
        except SessionEnded:
            pass  # ended already (timed out, or a resent Logout found it done): so be it
        self.forget_session()
        return "Logged out."

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
        self.hooks.forget()

    def close(self) -> None:
        logged_in = bool(self.session)
        self.close_session()  # before printing: the terminal may be gone (SIGHUP)
        self.frontends.close()
        if logged_in and self.interactive:
            print("Logged out.")


def greeting(role: str, frontends: Frontends, commands: list[Command], example: str) -> str:
    """What a CLI at a terminal says first: whom it talks to, how to type a command, the menu."""
    others = len(frontends.addresses) - 1
    return "\n".join([f"Marketplace {role} CLI, talking to {frontends.describe()}"
                      + (f" (and {others} more if it stops answering)." if others else "."),
                      "Type a number or a command; values may follow on the same line, "
                      f"e.g. {example}", "", menu(commands), ""])


def account_commands(role: str) -> list[Command]:
    """signup, login and logout: the same on both sides."""
    username = Arg("username", "Username", USERNAME)  # a new one (section 15)
    # Any name an account may have, older ones too; the CLI sends it as typed.
    login_name = Arg("username", "Username", LOGIN_USERNAME)
    password = Arg("password", "Password", PASSWORD, secret=True)
    new_password = Arg("password", "Password", PASSWORD, secret=True, twice=True)
    return [
        Command("signup", "CreateAccount", f"create a {role} account and log in",
                (username, new_password), needs_session=False, run=Shell.signup),
        Command("login", "Login", "log in", (login_name, password), needs_session=False,
                run=Shell.login),
        Command("logout", "Logout", "log out", needs_session=False, run=Shell.logout),
    ]


def cli_main(role: str, commands: list[Command], env_prefix: str, port: int, example: str,
             argv: list[str] | None = None, hooks: SessionHooks | None = None) -> None:
    """Parse flags, then run the CLI of ``role`` on stdin until quit; exits with its status."""
    commands = account_commands(role) + commands
    parser = argparse.ArgumentParser(
        description=f"The {role}'s command line for the marketplace.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands (a number or a name, then its values):\n" + menu(commands) + "\n\n"
               + CLI_SYNTAX.format(role=role, example=example))
    parser.add_argument("--host", default=os.environ.get(f"{env_prefix}_HOST", DEFAULT_HOST),
                        help=f"the {role} frontend's host (env {env_prefix}_HOST, "
                             f"default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=os.environ.get(f"{env_prefix}_PORT", port),
                        help=f"the {role} frontend's port (env {env_prefix}_PORT, default "
                             f"{port}, where run_all.sh starts the first {role} frontend)")
    parser.add_argument("--server", action="append", type=parse_address, metavar="HOST:PORT",
                        help=f"a {role} frontend to use; repeat it for several, used in turn "
                             "when one stops answering (env "
                             f"{env_prefix}S=HOST:PORT,HOST:PORT, the line run_all.sh "
                             "prints; default --host and --port)")
    add_tls_ca_flag(parser)
    args = parser.parse_args(argv)
    try:
        tls = client_context(args.tls_ca) if args.tls_ca else None
    except TlsError as error:
        parser.error(str(error))
    try:
        servers = os.environ.get(f"{env_prefix}S", "")
        addresses = args.server or [parse_address(text) for text in servers.split(",") if text]
    except argparse.ArgumentTypeError as error:
        parser.error(f"{env_prefix}S: {error}")
    sys.stdout.reconfigure(line_buffering=True)  # each result as soon as it is known
    logging.getLogger("market").addHandler(logging.NullHandler())  # a CLI logs nothing
    shell = Shell(role, commands,
                  Frontends(role, addresses or [(args.host, args.port)], tls=tls),
                  sys.stdin.isatty(), hooks)
    for name in ("SIGTERM", "SIGHUP"):  # log out on these too
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit_on_signal)
    if shell.interactive:
        shell.remember = prompts.use_readline(shell.commands.completions)
    try:
        status = shell.loop(example)
    except KeyboardInterrupt:  # a second Ctrl-C while logging out
        status = 130
    sys.exit(status)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
