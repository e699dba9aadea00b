"""The services one benchmark run starts, and what they spend (CPU, memory).

CPU is read every way a process answers (``market.ops.launch.CpuReading``: its own
``Stats``, to the µs; else the kernel's ns per thread; else 10 ms ticks), and each
figure keeps which way it was read and that way's resolution, so that a process that
spent less than what could be seen is said to have, not shown as 0."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from market.ops.launch import CpuReading, ServiceProcess


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


def below_resolution(cpu_s: float | None, resolution_s: float | None) -> bool:
    """Whether a CPU figure is less than its way of reading it can show (None: unread)."""
    return cpu_s is None or resolution_s is None or cpu_s < resolution_s
