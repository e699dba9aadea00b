"""Starting services as processes, reading their ready lines, and the echo chain.

``ServiceProcess`` starts one service (a top-level script, or ``-m market.launch
echo|relay``) on a free port and reads the address from its ``READY`` line;
``start_market`` starts the four services of one marketplace, databases first.
The benchmark, the tests and ``run_all.sh`` (``python3 -m market.launch wait``)
all read ready lines through ``parse_ready_line``.

The echo chain is the benchmark's yardstick: client -> relay -> echo, built from
the same ``Server`` and ``Client``, the echo answering every op at once.
"""
from __future__ import annotations

import argparse
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from market.client import Client, parse_address
from market.server import Peer, Service, parse_ready_line, serve, service_parser
from protocol import json_safe

ROOT = Path(__file__).resolve().parent.parent  # where the entry-point scripts are
START_TIMEOUT = 30.0  # seconds a service may take to print its ready line

# What the echo answers to every op: small, and enough for the clients' setup.
ECHO_RESULT = {"session": "echo", "seller_id": 1, "buyer_id": 1, "item_id": 1}


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
        """SIGTERM, then SIGKILL if it has not exited within 10 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
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


class Deployment:
    """Services this benchmark started; ``addresses`` maps a client role to its server.

    ``scratch`` is a directory made for them, removed when they stop.
    """

    def __init__(self, services: list[ServiceProcess], addresses: dict[str, tuple[str, int]],
                 scratch: Path | None = None):
        self.services = services
        self.addresses = addresses
        self.scratch = scratch

    def cpu_s(self) -> dict[str, float]:
        return {service.name: service.cpu_s() for service in self.services}

    def exited(self) -> str:
        """The names of the services that are no longer running ('' while all run)."""
        return ", ".join(s.name for s in self.services if s.proc.poll() is not None)

    def rss_kb(self) -> dict[str, int]:
        return {service.name: service.rss_kb() for service in self.services}

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def start_market(logs: Path, data_root: Path | None) -> Deployment:
    """The four services on free ports, databases first.

    With ``data_root`` the databases keep their data in a fresh directory under it.
    """
    started: list[ServiceProcess] = []
    scratch = None
    if data_root:
        data_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="market-", dir=data_root))
    try:
        for script in ("product_db.py", "customer_db.py"):
            extra = ["--data-dir", str(scratch / Path(script).stem)] if scratch else []
            started.append(ServiceProcess(script, *extra,
                                          log=logs / f"{Path(script).stem}.log").start())
        dbs = ["--product-db", started[0].where, "--customer-db", started[1].where]
        for script in ("seller_server.py", "buyer_server.py"):
            started.append(ServiceProcess(script, *dbs,
                                          log=logs / f"{Path(script).stem}.log").start())
    except BaseException:
        Deployment(started, {}, scratch).stop()
        raise
    return Deployment(started, {"seller": started[2].address, "buyer": started[3].address},
                      scratch)


def start_echo_chain(logs: Path) -> Deployment:
    echo = ServiceProcess("-m", "market.launch", "echo", log=logs / "echo.log").start()
    try:
        relay = ServiceProcess("-m", "market.launch", "relay", echo.where,
                               log=logs / "relay.log").start()
    except BaseException:
        echo.stop()
        raise
    return Deployment([echo, relay], {"seller": relay.address, "buyer": relay.address})


class EchoService(Service):
    """Answers every op at once with ``ECHO_RESULT``."""

    name = "echo"

    def dispatch(self, message: dict, peer: Peer | None = None) -> dict:
        return ECHO_RESULT


class RelayService(Service):
    """Forwards every request to the echo over pooled persistent connections."""

    name = "relay"

    def __init__(self, echo: Client) -> None:
        super().__init__()
        self.echo = echo

    def dispatch(self, message: dict, peer: Peer | None = None) -> dict:
        return self.echo.call(str(message.get("op")), json_safe(message.get("args")),
                              message.get("session"))


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


def main(argv: list[str] | None = None) -> Any:
    """``echo`` / ``relay ECHO_ADDRESS``: serve one part of the echo chain;
    ``wait LOG PID TIMEOUT``: print the address a starting service is ready on
    (exit 1 if it exits or times out first; for run_all.sh)."""
    parser = argparse.ArgumentParser(prog="python3 -m market.launch")
    parts = parser.add_subparsers(dest="what", required=True)
    for part in ("echo", "relay"):
        sub = parts.add_parser(part)
        if part == "relay":
            sub.add_argument("echo", type=parse_address)
        sub.add_argument("--port", type=int, default=0)
    wait = parts.add_parser("wait")
    wait.add_argument("log", type=Path)
    wait.add_argument("pid", type=int)
    wait.add_argument("timeout", type=float)
    args = parser.parse_args(argv)
    if args.what == "wait":
        address = wait_for_ready(args.log, args.pid, args.timeout)
        if address is None:
            sys.exit(1)
        print("%s:%d" % address)
        return None
    service = (EchoService() if args.what == "echo"
               else RelayService(Client(args.echo, max_idle=1024)))
    flags = service_parser(f"The {service.name} of the echo chain.", "BENCH_ECHO", 0)
    return serve(service, flags.parse_args(["--port", str(args.port), "--log-level", "WARNING"]))


if __name__ == "__main__":
    main()
