"""The echo chain: the benchmark's yardstick, client -> relay -> echo.

Built from the marketplace's own ``Server`` and ``Client``: the relay forwards
every request to the echo over pooled persistent connections, and the echo
answers every op at once with a small fixed result. Both answer ``Stats`` themselves,
through the ``Service`` path like every service (the benchmark reads their ``cpu_s``),
and only ``Stats``: one comparison in front of the echo. ``python3 -m bench.echo
echo|relay ECHO_ADDRESS`` serves one part; ``start_echo_chain`` starts both.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.deploy import Deployment
from market.net.client import Client, parse_address
from market.net.flags import service_parser
from market.net.server import serve
from market.net.service import Peer, Service
from market.ops.launch import ServiceProcess
from protocol import json_safe

# What the echo answers to every op: small, and enough for the clients' setup.
ECHO_RESULT = {"session": "echo", "seller_id": 1, "buyer_id": 1, "item_id": 1}


class EchoService(Service):
    """Answers every op at once with ``ECHO_RESULT``, but ``Stats`` (its own)."""

    name = "echo"

    def dispatch(self, message: dict, peer: Peer | None = None) -> dict:
        if message.get("op") != "Stats":
            return ECHO_RESULT
        return super().dispatch(message, peer)


class RelayService(Service):
    """Forwards every request to the echo over pooled persistent connections, but
    ``Stats`` (answers its own)."""

    name = "relay"

    def __init__(self, echo: Client) -> None:
        super().__init__()
        self.echo = echo

    def dispatch(self, message: dict, peer: Peer | None = None) -> dict:
        op = message.get("op")
        if op != "Stats":
            return self.echo.call(str(op), json_safe(message.get("args")),
                                  message.get("session"))
        return super().dispatch(message, peer)


def start_echo_chain(logs: Path) -> Deployment:
    echo = ServiceProcess("-m", "bench.echo", "echo", log=logs / "echo.log").start()
    try:
        relay = ServiceProcess("-m", "bench.echo", "relay", echo.where,
                               log=logs / "relay.log").start()
    except BaseException:
        echo.stop()
        raise
    return Deployment([echo, relay], {"seller": relay.address, "buyer": relay.address})


def main(argv: list[str] | None = None) -> Any:
    """``echo`` / ``relay ECHO_ADDRESS``: serve one part of the echo chain."""
    parser = argparse.ArgumentParser(prog="python3 -m bench.echo")
    parts = parser.add_subparsers(dest="what", required=True)
    for part in ("echo", "relay"):
        sub = parts.add_parser(part)
        if part == "relay":
            sub.add_argument("echo", type=parse_address)
        sub.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    service = (EchoService() if args.what == "echo"
               else RelayService(Client(args.echo, max_idle=1024)))
    flags = service_parser(f"The {service.name} of the echo chain.", "BENCH_ECHO", 0)
    return serve(service, flags.parse_args(["--port", str(args.port), "--log-level", "WARNING"]))


if __name__ == "__main__":
    main()
