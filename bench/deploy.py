"""The services one benchmark run starts, and what they spend (CPU, memory).

CPU is read every way a process answers (``market.ops.launch.CpuReading``: its own
``Stats``, to the µs; else the kernel's ns per thread; else 10 ms ticks), and each
figure keeps which way it was read and that way's resolution, so that a process that
spent less than what could be seen is said to have, not shown as 0.

Replicated (``--replicated``), a run starts a local etcd cluster of three members first
(``etcd_1`` ... ``etcd_3``, read from /proc: they have no ``Stats``), then two processes
of each database on it, named by the role each took (the active one as a single process
is, "product database"; the other "product database standby"), then the frontends with
both addresses of each."""
from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from market.config import START_TIMEOUT
from market.net.client import Client
from market.net.tls import client_context
from market.ops.etcd import EtcdCluster, EtcdMember
from market.ops.launch import ROOT, CpuReading, ServiceProcess
from protocol import ApiError

ETCD_MEMBERS = 3  # of the cluster a replicated run starts


class Deployment:
    """Services this benchmark started; ``addresses`` maps a client role to its server.

    ``scratch`` is a directory made for them, removed when they stop.
    """

    def __init__(self, services: list[ServiceProcess], addresses: dict[str, tuple[str, int]],
                 scratch: Path | None = None):
        self.services = services
        self.addresses = addresses
        self.scratch = scratch

    def cpu_readings(self) -> dict[str, CpuReading]:
        """Each service's CPU time so far, every way it can be read."""
        return {service.name: service.cpu_reading() for service in self.services}

    def cpu_since(self, before: dict[str, CpuReading]) -> dict[str, dict]:
        """Each service's CPU since ``before`` (``cpu_readings``): ``{"cpu_s", "source",
        "resolution_s"}`` by the finest way both readings have."""
        return {name: reading.since(before[name])
                for name, reading in self.cpu_readings().items()}

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


def make_certs(tls_dir: Path) -> Path:
    """The CA and a certificate per service in ``tls_dir`` (./make_certs.sh), made once
    (again, keeping the CA, where one made before etcd's is there)."""
    if not (tls_dir / "ca.crt").exists() or not (tls_dir / "etcd.crt").exists():
        subprocess.run([str(ROOT / "make_certs.sh"), "--dir", str(tls_dir)], check=True,
                       capture_output=True, text=True)
    return tls_dir


def tls_args(tls_dir: Path | None, name: str) -> list[str]:
    """The TLS flags of service ``name`` (product_db, ..., seller_server) with the
    certificates in ``tls_dir``; none without."""
    if tls_dir is None:
        return []
    return ["--tls-cert", str(tls_dir / f"{name}.crt"), "--tls-key", str(tls_dir / f"{name}.key"),
            "--tls-ca", str(tls_dir / "ca.crt")]


def tls_stats_context(tls_dir: Path | None) -> ssl.SSLContext | None:
    """What the benchmark asks its services for ``Stats`` with over TLS: the CA, and a
    frontend's certificate for the databases (which ask for one); None without TLS."""
    if tls_dir is None:
        return None
    return client_context(str(tls_dir / "ca.crt"), str(tls_dir / "seller_server.crt"),
                          str(tls_dir / "seller_server.key"))


class EtcdProcess(ServiceProcess):
    """A member of the etcd cluster of a replicated run, as a service of the deployment:
    its CPU and memory read from /proc (it has no ``Stats``), stopped by TERM."""

    def __init__(self, member: EtcdMember, name: str) -> None:
        super().__init__(member.name)
        self.member = member
        self.proc = member.proc
        self.name = name

    def stop(self) -> None:
        self.member.stop()


def start_market(logs: Path, data_root: Path | None, tls_dir: Path | None = None,
                 replicated: bool = False) -> Deployment:
    """The four services on free ports, databases first.

    With ``data_root`` the databases keep their data in a fresh directory under it; with
    ``tls_dir`` (certificates of ``make_certs``) every service serves TLS only and the
    frontends dial the databases over TLS. ``replicated``: a local etcd cluster first (its
    data in a fresh directory under ``data_root``, else under the system's temporary
    directory), then two processes of each database on it (see the module doc).
    """
    started: list[ServiceProcess] = []
    scratch = None
    if data_root or replicated:
        if data_root:
            data_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="market-", dir=data_root))
    try:
        stats_tls = tls_stats_context(tls_dir)
        if replicated:
            dbs = start_replicated(logs, scratch, tls_dir, stats_tls, started)
        else:
            for script in ("product_db.py", "customer_db.py"):
                name = Path(script).stem
                extra = ["--data-dir", str(scratch / name)] if scratch else []
                started.append(ServiceProcess(script, *extra, *tls_args(tls_dir, name),
                                              log=logs / f"{name}.log", tls=stats_tls).start())
            dbs = ["--product-db", started[0].where, "--customer-db", started[1].where]
        for script in ("seller_server.py", "buyer_server.py"):
            name = Path(script).stem
            started.append(ServiceProcess(script, *dbs, *tls_args(tls_dir, name),
                                          log=logs / f"{name}.log", tls=stats_tls).start())
    except BaseException:
        Deployment(started, {}, scratch).stop()
        raise
    return Deployment(started, {"seller": started[-2].address, "buyer": started[-1].address},
                      scratch)


def start_replicated(logs: Path, scratch: Path, tls_dir: Path | None,
                     stats_tls: ssl.SSLContext | None, started: list[ServiceProcess]) -> list[str]:
    """The etcd cluster and two processes of each database on it, appended to ``started``
    as they start; the frontends' flags naming both processes of each database."""
    etcd = EtcdCluster(scratch / "etcd", ETCD_MEMBERS, tls_dir)
    try:
        etcd.start()
    finally:  # the members started, even if the cluster did not come up
        started += [EtcdProcess(member, f"etcd_{n}")
                    for n, member in enumerate(etcd.members, 1) if member.proc]
    dbs = []
    for script in ("product_db.py", "customer_db.py"):
        name = Path(script).stem
        pair = [ServiceProcess(script, "--etcd", etcd.urls, "--replica-name", f"{name}_{n}",
                               *tls_args(tls_dir, name), log=logs / f"{name}_{n}.log",
                               tls=stats_tls) for n in (1, 2)]
        for process in pair:
            started.append(process.start())
        active = wait_for_active(pair, stats_tls)
        for process in pair:
            if process is not active:
                process.name += " standby"
        dbs += [f"--{name.replace('_', '-')}", ",".join(process.where for process in pair)]
    return dbs


def wait_for_active(processes: list[ServiceProcess],
                    tls: ssl.SSLContext | None) -> ServiceProcess:
    """The process of a replicated database that says it is active, once one does."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        for process in processes:
            client = Client(process.address, 1.0, tls=tls, standby_too=True)
            try:
                if client.call("Hello").get("role") == "active":
                    return process
            except ApiError:
                pass
            finally:
                client.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"no process of {processes[0].name} became active within "
                               f"{START_TIMEOUT} s (see its logs)")
        time.sleep(0.05)


def below_resolution(cpu_s: float | None, resolution_s: float | None) -> bool:
    """Whether a CPU figure is less than its way of reading it can show (None: unread)."""
    return cpu_s is None or resolution_s is None or cpu_s < resolution_s
