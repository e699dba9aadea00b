"""What a CLI command is: its values (read from text, checked, explained in the
prompt's own words), its usage and the numbered menu.

Values are checked with the contract's own validators (``market.fields``)
before anything is sent; a bad one becomes one sentence naming the value as the
prompt does ("Units for sale must be a whole number from 1 to 1,000,000.").
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from market.cli.views import table
from market.errors import CliError
from protocol import ApiError, Int, Omittable, OneOf, Price, Validator, json_safe

QUIT_WORDS = ("quit", "exit")
HELP_WORDS = ("help", "?", "menu")
MENU_USAGE_WIDTH = 36  # so that the menu fits 80 columns
HUGE = 10 ** 9  # an upper limit past this is shown as "from N up"
# Digits with optional thousands commas (1,000), optional decimals: what views.money prints.
_NUMBER = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_WHOLE = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+")


def read_price(text: str) -> Decimal:
    """'17.50', '$17.50', '1,000' or '$1,000.00' -> Decimal; ``Price`` then checks it.

    Anything else raises ValueError: '17,50' (1750 or 17.50?), '1_000', '1e2', 'inf', 'nan'.
    """
    number = text.strip().removeprefix("$")
    if not _NUMBER.fullmatch(number):
        raise ValueError(f"not an amount in dollars: {text!r}")
    return Decimal(number.replace(",", ""))


def read_whole(text: str) -> int:
    """'5' or '1,000' -> int; '1_000', '1e3', '1.0', '-1' and non-ASCII digits raise ValueError."""
    number = text.strip()
    if not _WHOLE.fullmatch(number):
        raise ValueError(f"not a whole number: {text!r}")
    return int(number.replace(",", ""))


def read_words(text: str) -> list[str]:
    """'desk,light' or 'desk light' -> ['desk', 'light']; ``Keywords`` then checks it."""
    return text.replace(",", " ").split()


def expectation(check: Validator) -> str:
    """What a value must be, for a person, for the validators whose own words are a
    programmer's ("an integer from 1 to 9007199254740992"); '' for the others."""
    inner = check.inner if isinstance(check, Omittable) else check
    if isinstance(inner, Int):
        if inner.high >= HUGE:
            return f"a whole number from {inner.low:,} up"
        return f"a whole number from {inner.low:,} to {inner.high:,}"
    if isinstance(inner, Price):
        return ("a number above 0 and at most 1,000,000 with at most two decimals "
                "(like 17.50 or $1,000.00)")
    if isinstance(inner, OneOf):
        return " or ".join(inner.choices)
    return ""


def choices(check: Validator) -> tuple[str, ...]:
    """The words a value may be (for Tab completion); () when it is not one of a few words."""
    inner = check.inner if isinstance(check, Omittable) else check
    return tuple(inner.choices) if isinstance(inner, OneOf) else ()


@dataclass
class Arg:
    """One value of a command: the op's field, how to ask for it, read it and check it."""

    name: str
    prompt: str
    check: Validator
    read: Callable[[str], Any] = str
    secret: bool = False  # asked for without echo, and kept out of the history
    twice: bool = False  # asked for twice at a terminal (a new password)
    prompted: bool = True  # asked for at a terminal when left off the line
    metavar: str = ""  # how usage shows it (default: the name in capitals)
    label: str = ""  # how messages name it (default: the prompt up to its first ',' or '(')
    refusal: str = ""  # the whole message for a bad value (default: label must be ...)

    @property
    def usage(self) -> str:
        shown = self.metavar or self.name.upper()
        return f"[{shown}]" if self.check.optional else shown

    @property
    def title(self) -> str:
        return self.label or re.split(r",| \(", self.prompt, maxsplit=1)[0]

    def parse(self, text: str) -> Any:
        """Text -> the value to send, within the spec's limits, or ``CliError``."""
        try:
            value = self.read(text)
        except (ValueError, ArithmeticError):
            value = text  # not even the right type: the check says what is expected
        try:
            self.check(self.name.upper(), value)
        except ApiError as error:
            raise CliError(self.refusal or self._refused(error.message)) from None
        return json_safe(value)

    def _refused(self, message: str) -> str:
        expected = expectation(self.check)
        if expected:
            return f"{self.title} must be {expected}."
        return message.replace(f"'{self.name.upper()}'", self.title, 1) \
            .replace("must be a string of", "must be")


@dataclass
class Command:
    """One CLI command: its name, the spec op it sends, its values, how to show the reply."""

    name: str
    op: str
    summary: str
    args: tuple[Arg, ...] = ()
    show: Callable[[dict], str] = lambda result: "Done."
    # For a change: the command that shows whether it took effect, should no frontend be
    # able to tell ("cart"; {name} is the value of that name: "item {item_id}").
    check: str = ""
    needs_session: bool = True
    # Replaces sending ``op`` + ``show``: called with the shell running the command
    # (``market.cli.shell.Shell``, which imports this module) and the values.
    run: Callable[[Any, dict], str] | None = None
    paged: bool = False  # a list read a page at a time (its args: ``MORE``)

    def usage(self) -> str:
        return " ".join([self.name, *(arg.usage for arg in self.args)])


MORE = Arg("more", "more: the page after the one shown last", Omittable(OneOf(("more",)), ""),
           str.lower, prompted=False, metavar="more",
           refusal="Only the word more may follow; with it, the next page is shown.")


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


class CommandSet:
    """One CLI's commands, found by number, name or op name (any case)."""

    def __init__(self, commands: list[Command]) -> None:
        self.all = commands
        self.by_name: dict[str, Command] = {}
        for number, command in enumerate(commands, 1):
            for key in (str(number), command.name, command.op.lower()):
                self.by_name[key] = command

    def find(self, name: str) -> Command | None:
        return self.by_name.get(name.lower())

    def help(self, words: list[str]) -> str:
        """The menu, or one command in detail."""
        if not words:
            return menu(self.all)
        command = self.find(words[0])
        if command is None:
            return f"There is no command '{words[0]}'."
        rows = [[arg.usage, arg.prompt] for arg in command.args]
        return "\n".join([f"{command.usage()}: {command.summary} ({command.op}).",
                          *("  " + line for line in table(rows).splitlines())])

    def completions(self, before: list[str], text: str) -> list[str]:
        """Tab: command names and op names first, then the words a value may be."""
        names = [*(command.name for command in self.all), *(command.op for command in self.all)]
        if not before:
            words = names + ["help", *QUIT_WORDS]
        elif before[0].lower() in HELP_WORDS:
            words = names if len(before) == 1 else []
        else:
            command, position = self.find(before[0]), len(before) - 1
            words = list(choices(command.args[position].check)) \
                if command and position < len(command.args) else []
        matches: dict[str, str] = {}  # lower case -> the first spelling: login, not Login too
        for word in words:
            if word.lower().startswith(text.lower()):
                matches.setdefault(word.lower(), word)
        return list(matches.values())

    def for_history(self, line: str) -> str:
        """The line as kept in the history: without a secret typed on it (a password)."""
        try:
            words = shlex.split(line)
        except ValueError:
            return line
        command = self.find(words[0]) if words else None
        secret = [position for position, arg in enumerate(command.args, 1) if arg.secret] \
            if command else []
        return shlex.join(words[:secret[0]]) if secret and len(words) > secret[0] else line
