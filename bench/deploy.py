"""The services one benchmark run starts, and what they spend (CPU, memory).

CPU is read every way a process answers (``market.ops.launch.CpuReading``: its own
``Stats``, to the µs; else the kernel's ns per thread; else 10 ms ticks), and each
figure keeps which way it was read and that way's resolution, so that a process that
spent less than what could be seen is said to have, not shown as 0."""
from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

from market.net.tls import client_context
from market.ops.launch import ROOT, CpuReading, ServiceProcess


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
    """The CA and a certificate per service in ``tls_dir`` (./make_certs.sh), made once."""
    if not (tls_dir / "ca.crt").exists():
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


def start_market(logs: Path, data_root: Path | None, tls_dir: Path | None = None) -> Deployment:
    """The four services on free ports, databases first.

    With ``data_root`` the databases keep their data in a fresh directory under it; with
    ``tls_dir`` (certificates of ``make_certs``) every service serves TLS only and the
    frontends dial the databases over TLS.
    """
    started: list[ServiceProcess] = []
    scratch = None
    if data_root:
        data_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="market-", dir=data_root))
    try:
        stats_tls = tls_stats_context(tls_dir)
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
    return Deployment(started, {"seller": started[2].address, "buyer": started[3].address},
                      scratch)


def below_resolution(cpu_s: float | None, resolution_s: float | None) -> bool:
    """Whether a CPU figure is less than its way of reading it can show (None: unread)."""
    return cpu_s is None or resolution_s is None or cpu_s < resolution_s
