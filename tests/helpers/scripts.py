"""run_all.sh, stop_all.sh and status.sh as the tests run them: in a run directory of
their own, on free ports, and what to look at after."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

from .market import ROOT

SERVICES = ["product_db", "customer_db", "seller_server", "buyer_server"]
PORT_VARIABLES = ["PRODUCT_DB_PORT", "CUSTOMER_DB_PORT", "SELLER_SERVER_PORT",
                  "BUYER_SERVER_PORT"]


def free_ports(count: int) -> list[int]:
    """``count`` different ports that are free now."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run_env(tmp_path: Path) -> dict:
    """The environment of one run: its own run directory (``tmp_path/run``) and four free
    ports, the tests' Python, and a short grace between TERM and KILL."""
    return {**os.environ, "RUN_DIR": str(tmp_path / "run"), "PYTHON": sys.executable,
            "STOP_GRACE": "3", **dict(zip(PORT_VARIABLES, map(str, free_ports(4))))}


# What REPLICATED=1 ./run_all.sh starts, in the order status.sh shows them.
REPLICATED_SERVICES = ["product_db", "product_db_2", "customer_db", "customer_db_2",
                       "seller_server", "buyer_server", "etcd_1", "etcd_2", "etcd_3"]


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports that are free now (below Linux's
    ephemeral range, so that no connection takes one meanwhile)."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(20000, 32000)
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def replicated_env(tmp_path: Path) -> dict:
    """``run_env`` with REPLICATED=1: free ports for the second process of each database
    too, and six consecutive free ones from ETCD_PORT for the three etcd members (client
    and peer port each)."""
    second = free_ports(2)
    return {**run_env(tmp_path), "REPLICATED": "1", "ETCD_PORT": str(consecutive_free_ports(6)),
            "PRODUCT_DB_2_PORT": str(second[0]), "CUSTOMER_DB_2_PORT": str(second[1])}


def script(name: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    """Run one of the project's shell scripts with ``env``; its outcome."""
    return subprocess.run([str(ROOT / name), *args], env=env, capture_output=True, text=True,
                          timeout=60)
