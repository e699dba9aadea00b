"""Starting services as processes and reading their ready lines.

``ServiceProcess`` starts one service (a top-level script, or ``"-m", module``) on
a free port and reads the address from its ``READY`` line. The tests, the
benchmark and ``run_all.sh`` (``python3 -m market.ops.launch wait``) all read ready
lines through ``parse_ready_line``; ``alive`` says whether a process still runs.

``CpuReading`` is what a service process has spent on the CPU so far, read every way
that answers (its own ``Stats``, /proc/PID/task/*/schedstat, /proc/PID/stat ticks);
``CpuReading.since`` gives the CPU between two readings by the finest way both have,
and says which.
"""
from __future__ import annotations

import argparse
import os
import select
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from market.config import START_TIMEOUT, STATUS_TIMEOUT, STOP_GRACE
from market.net.client import Client
from market.net.server import parse_ready_line
from protocol import ApiError

ROOT = Path(__file__).resolve().parents[2]  # where the entry-point scripts are
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # per second, in /proc/PID/stat (100)
TICK_S = 1 / CLOCK_TICKS  # what /proc/PID/stat counts CPU time in (10 ms)
# The ways of reading a process's CPU time, best first, and the resolution of each (s):
# its own Stats (time.process_time(), every thread's, ended ones too, rounded to the
# µs); the ns the kernel counts per thread (/proc/PID/task/*/schedstat; only threads
# still running, so only when none of the first reading's has ended); the ticks of
# /proc/PID/stat.
CPU_RESOLUTION_S = {"stats": 1e-6, "schedstat": 1e-9, "ticks": TICK_S}


@dataclass
class CpuReading:
    """A process's CPU time so far, each way that answered (None: that way did not)."""

    stats_s: float | None = None  # ``cpu_s`` of its Stats reply
    threads_ns: dict[int, int] | None = None  # thread id -> ns on the CPU (schedstat)
    ticks_s: float | None = None  # utime + stime of /proc/PID/stat

    def since(self, before: CpuReading) -> dict:
        """The CPU spent from ``before`` to this reading, by the best way both readings
        have: ``{"cpu_s", "source", "resolution_s"}``; with none, ``cpu_s`` and
        ``resolution_s`` are None and ``source`` is "n/a"."""
        if self.stats_s is not None and before.stats_s is not None:
            return _spent(self.stats_s - before.stats_s, "stats")
        if (self.threads_ns is not None and before.threads_ns is not None
                and before.threads_ns.keys() <= self.threads_ns.keys()):
            ns = sum(self.threads_ns.values()) - sum(before.threads_ns.values())
            return _spent(ns / 1e9, "schedstat")
        if self.ticks_s is not None and before.ticks_s is not None:
            return _spent(self.ticks_s - before.ticks_s, "ticks")
        return {"cpu_s": None, "source": "n/a", "resolution_s": None}


def _spent(seconds: float, source: str) -> dict:
    return {"cpu_s": round(max(0.0, seconds), 9), "source": source,
            "resolution_s": CPU_RESOLUTION_S[source]}


class ServiceProcess:
    """One service as a subprocess: a top-level ``script`` (or ``"-m", module``) and its
    arguments.

    ``start`` runs it on a port (0: any free one) and reads its address from the
    ready line; its log (stderr) is appended to ``log``, else dropped. ``tls`` (a client
    ``ssl.SSLContext``) is what its ``Stats`` are asked over, for a service serving TLS.
    """

    def __init__(self, script: str, *args: str, env: dict | None = None,
                 log: Path | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.args = list(args)
        self.log = log
        self.tls = tls
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
        """CPU seconds so far from /proc/PID/stat, in ``TICK_S`` ticks."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def cpu_reading(self) -> CpuReading:
        """The CPU time so far, every way that answers; /proc first, then ``Stats``
        (whose connection's thread is then not among the threads read)."""
        threads = self.threads_cpu_ns()
        try:
            ticks: float | None = self.cpu_s()
        except (OSError, IndexError, ValueError):
            ticks = None
        return CpuReading(self.stats_cpu_s(), threads, ticks)

    def threads_cpu_ns(self) -> dict[int, int] | None:
        """Nanoseconds on the CPU of each thread running now (/proc/PID/task/*/schedstat,
        whose first field is that); None if it cannot be read."""
        spent = {}
        try:
            for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
                try:
                    with open(f"/proc/{self.proc.pid}/task/{tid}/schedstat") as stat:
                        spent[int(tid)] = int(stat.read().split()[0])
                except FileNotFoundError:  # the thread ended meanwhile
                    continue
        except (OSError, IndexError, ValueError):
            return None
        return spent or None

    def stats_cpu_s(self) -> float | None:
        """``cpu_s`` of the service's ``Stats`` (its ``time.process_time()``); None if it
        cannot be asked (gone, no answer, a database wanting the secret) or has none."""
        if self.proc is None or self.proc.poll() is not None or self.address is None:
            return None
        client = Client(self.address, STATUS_TIMEOUT, tls=self.tls)
        try:
            value = client.call("Stats", read=True).get("cpu_s")
        except (ApiError, OSError):
            return None
        finally:
            client.close()
        return float(value) if type(value) in (int, float) else None

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


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


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
