"""Driving the seller and buyer CLIs as a person would: a run with lines on a piped stdin
(``cli``), a conversation through pipes or a pseudo-terminal (``Conversation``), and a
pseudo-terminal that is the CLI's controlling terminal, so that Ctrl-C works
(``Terminal``)."""
from __future__ import annotations

import fcntl
import os
import select
import socket
import subprocess
import sys
import termios
import time

from market.ops.launch import ServiceProcess

from .market import ROOT

CTRL_C, CTRL_D = b"\x03", b"\x04"


def cli(script: str, port: int | None, *lines: str, env: dict | None = None):
    """Run a CLI with ``lines`` on a piped stdin; return the finished process."""
    flags = ["--port", str(port)] if port else []
    return subprocess.run([sys.executable, str(ROOT / script), *flags],
                          input="".join(line + "\n" for line in lines), text=True,
                          capture_output=True, timeout=60, env={**os.environ, **(env or {})})


def port_of(service: ServiceProcess) -> int:
    return service.address[1]


def seller_cli(market, *lines: str):
    """The seller CLI at ``market``'s seller frontend, ``lines`` piped in."""
    return cli("seller_client.py", port_of(market.seller_server), *lines)


def buyer_cli(market, *lines: str):
    """The buyer CLI at ``market``'s buyer frontend, ``lines`` piped in."""
    return cli("buyer_client.py", port_of(market.buyer_server), *lines)


def ok(result) -> str:
    """The output of a run that must have succeeded."""
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    return result.stdout


def row(output: str, *cells: str) -> str:
    """The one output line holding every cell."""
    lines = [line for line in output.splitlines() if all(cell in line.split() for cell in cells)]
    assert len(lines) == 1, (cells, output)
    return lines[0]


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Conversation:
    """A running CLI, written to line by line and read as it answers."""

    def __init__(self, proc: subprocess.Popen, read_fd: int, write_fd: int) -> None:
        self.proc, self.read_fd, self.write_fd = proc, read_fd, write_fd
        self.seen = b""

    @classmethod
    def piped(cls, script: str, port: int) -> "Conversation":
        """stdin a pipe (script mode); stdout and stderr merged into one pipe."""
        proc = subprocess.Popen([sys.executable, str(ROOT / script), "--port", str(port)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        return cls(proc, proc.stdout.fileno(), proc.stdin.fileno())

    @classmethod
    def at_terminal(cls, script: str, port: int) -> "Conversation":
        """stdin, stdout and stderr a pseudo-terminal (interactive mode)."""
        controller, terminal = os.openpty()
        proc = subprocess.Popen([sys.executable, str(ROOT / script), "--port", str(port)],
                                stdin=terminal, stdout=terminal, stderr=terminal,
                                start_new_session=True, env={**os.environ, "TERM": "dumb"})
        os.close(terminal)
        return cls(proc, controller, controller)

    def say(self, line: str, expect: str) -> str:
        os.write(self.write_fd, line.encode() + b"\n")
        return self.expect(expect)

    def expect(self, text: str, timeout: float = 15) -> str:
        """Everything up to and including ``text``, once the CLI has written it."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([self.read_fd], [], [], left)[0], self.seen
            try:
                chunk = os.read(self.read_fd, 65536)
            except OSError:  # a pseudo-terminal whose other end has closed
                chunk = b""
            assert chunk, self.seen
            self.seen += chunk
        before, _, self.seen = self.seen.partition(text.encode())
        return before.decode() + text

    def finish(self) -> int:
        """Close stdin (a pipe), wait for the exit; the exit status."""
        self.proc.stdin.close()
        status = self.proc.wait(15)
        self.seen += self.proc.stdout.read()
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _take_the_terminal() -> None:
    """In the child, after setsid: make stdin (the pty) the controlling terminal, so that
    Ctrl-C typed on it sends SIGINT, as in a real terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal(Conversation):
    """A CLI on a pseudo-terminal that is its controlling terminal (Ctrl-C works)."""

    @classmethod
    def start(cls, script: str, port: int) -> "Terminal":
        controller, terminal = os.openpty()
        proc = subprocess.Popen([sys.executable, str(ROOT / script), "--port", str(port)],
                                stdin=terminal, stdout=terminal, stderr=terminal,
                                start_new_session=True, preexec_fn=_take_the_terminal,
                                env={**os.environ, "TERM": "dumb"})
        os.close(terminal)
        return cls(proc, controller, controller)

    def say(self, line: str, expect: str, timeout: float = 10) -> str:
        os.write(self.write_fd, line.encode() + b"\n")
        return self.expect(expect, timeout)

    def press(self, key: bytes, expect: str, timeout: float = 10) -> str:
        """Press a control key a moment after the last output, as a person would: a
        SIGINT landing while readline is still handling the previous key is only acted
        on at the next Enter (CPython's readline loop), a race no person wins."""
        time.sleep(0.3)
        os.write(self.write_fd, key)
        return self.expect(expect, timeout)

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        os.close(self.read_fd)
