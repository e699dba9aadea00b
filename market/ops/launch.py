"""Starting services as processes and reading their ready lines.

``ServiceProcess`` starts one service (a top-level script, or ``"-m", module``) on
a free port and reads the address from its ``READY`` line. The tests, the
benchmark and ``run_all.sh`` (``python3 -m market.ops.launch wait``) all read ready
lines through ``parse_ready_line``.
"""
from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from market.config import START_TIMEOUT, STOP_GRACE
from market.net.server import parse_ready_line

ROOT = Path(__file__).resolve().parents[2]  # where the entry-point scripts are


class ServiceProcess:
    """One service as a subprocess: a top-level ``script`` (or ``"-m", module``) and its
    arguments.

    ``start`` runs it on a port (0: any free one) and reads its address from the
    ready line; its log (stderr) is appended to ``log``, else dropped.
    """

    def __init__(self, script: str, *args: str, env: dict | None = None,
                 log: Path | None = None) -> None:
        self.script = script
        self.args = list(args)
        self.log = log
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.name = ""
        self.address: tuple[str, int] | None = None

    def start(self, port: int = 0) -> "ServiceProcess":
        script = self.script if self.script.startswith("-") else str(ROOT / self.script)
        command = [sys.executable, script, *self.args, "--port", str(port)]
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log or os.devnull, "ab") as log_file:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, text=True,
                                         stdout=subprocess.PIPE, stderr=log_file)
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        address = parse_ready_line(line)
        if address is None:
            self.kill()
            raise RuntimeError(f"{' '.join(command)} did not start "
                               f"(see {self.log or 'its log'}): {line!r}")
        self.name, self.address = line.split(" ready on ")[0], address
        return self

    def restart(self) -> "ServiceProcess":
        """Start again on the same port (after ``kill`` or ``stop``)."""
        return self.start(self.address[1])

    @property
    def where(self) -> str:
        return "%s:%d" % self.address

    def rss_kb(self) -> int:
        return _status_kb(self.proc.pid, "VmRSS:")

    def peak_rss_kb(self) -> int:
        return _status_kb(self.proc.pid, "VmHWM:")

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipe()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``STOP_GRACE`` seconds."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def wait_for_ready(log: Path, pid: int, timeout: float) -> tuple[str, int] | None:
    """The address in the first ready line of ``log``, once process ``pid`` has written
    it; None if the process exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(log, errors="replace") as lines:
                for line in lines:
                    address = parse_ready_line(line)
                    if address:
                        return address
        except FileNotFoundError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        time.sleep(0.1)
    return None


def main(argv: list[str] | None = None) -> None:
    """``wait LOG PID TIMEOUT``: print the address a starting service is ready on
    (exit 1 if it exits or times out first; for run_all.sh)."""
    parser = argparse.ArgumentParser(prog="python3 -m market.ops.launch")
    parts = parser.add_subparsers(dest="what", required=True)
    wait = parts.add_parser("wait")
    wait.add_argument("log", type=Path)
    wait.add_argument("pid", type=int)
    wait.add_argument("timeout", type=float)
    args = parser.parse_args(argv)
    address = wait_for_ready(args.log, args.pid, args.timeout)
    if address is None:
        sys.exit(1)
    print("%s:%d" % address)


if __name__ == "__main__":
    main()
