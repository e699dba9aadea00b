"""Terminal input for the CLIs: questions, a command's values, yes/no questions, Tab
completion, history.

Only used at a terminal. Ctrl-C or Ctrl-D at a question cancels it
(``Cancelled``); Enter alone is the caller's to interpret. Readline, where it
exists, gives line editing, Tab completion and a history of command lines only
(never answers such as card numbers, never a password typed on the line).
"""
from __future__ import annotations

import getpass
import sys
from typing import Any, Callable

from market.cli.commands import Arg
from market.errors import Cancelled, CliError

YES, NO = ("y", "yes"), ("n", "no", "")


def ask(question: str, secret: bool = False) -> str:
    """One answer, read without echo if ``secret``; ``Cancelled`` on Ctrl-C or Ctrl-D."""
    try:
        return (getpass.getpass if secret else input)(question)
    except KeyboardInterrupt:
        print("^C")
        raise Cancelled() from None
    except EOFError:
        print()
        raise Cancelled() from None


def confirm(question: str) -> bool | None:
    """A yes/no question, asked until answered y or n (Enter alone: no).

    None when cancelled with Ctrl-C; Ctrl-D (or the end of input) counts as no.
    """
    while True:
        try:
            answer = input(f"{question} [y/N] ").strip().lower()
        except KeyboardInterrupt:
            print("^C")
            return None
        except EOFError:
            print()
            return False
        if answer in YES or answer in NO:
            return answer in YES
        print("  Please answer y (yes) or n (no); Ctrl-C cancels.")


Completer = Callable[[list[str], str], list[str]]  # (words before, word so far) -> choices


def use_readline(completions: Completer) -> Callable[[str], None]:
    """Line editing and Tab completion (``completions``) where readline exists.

    Returns the function that adds a line to the history (a no-op without readline).
    """
    try:
        import readline
    except ImportError:
        return lambda line: None

    def complete(text: str, state: int) -> str | None:
        before = readline.get_line_buffer()[:readline.get_begidx()].split()
        matches = completions(before, text)
        return matches[state] + " " if state < len(matches) else None  # Python's adds none

    readline.set_completer(complete)
    readline.set_completer_delims(" \t\n\"'")
    libedit = "libedit" in (readline.__doc__ or "")
    readline.parse_and_bind("bind ^I rl_complete" if libedit else "tab: complete")
    readline.set_auto_history(False)
    return lambda line: readline.add_history(line) if line.strip() else None


def ask_value(arg: Arg) -> Any:
    """Ask for one command value until it passes its check; Enter alone skips or cancels."""
    hint = " (Enter to skip)" if arg.check.optional else ""
    while True:
        text = ask(f"  {arg.prompt}{hint}: ", arg.secret)
        if not text:
            if arg.check.optional:
                return arg.check.default
            raise Cancelled()
        try:
            value = arg.parse(text)
        except CliError as error:
            print(f"  {error}", file=sys.stderr)
            continue
        if arg.twice and ask(f"  {arg.prompt} again: ", arg.secret) != text:
            print("  The two differ; type it again.", file=sys.stderr)
            continue
        return value
