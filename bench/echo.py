"""The echo chain: the benchmark's yardstick, client -> relay -> echo.

Built from the marketplace's own ``Server`` and ``Client``: the relay forwards
every request to the echo over pooled persistent connections, and the echo
answers every op at once with a small fixed result. Both answer ``Stats`` themselves,
through the ``Service`` path like every service (the benchmark reads their ``cpu_s``),
and only ``Stats``: one comparison in front of the echo. ``python3 -m bench.echo
echo|relay ECHO_ADDRESS [--tls-cert FILE --tls-key FILE --tls-ca FILE]`` serves one part;
``start_echo_chain`` starts both. Over TLS (``performance.py --tls``) the chain is built as
the market is: the echo asks for a client certificate as a database does, and the relay
dials it over TLS presenting its own, so the yardstick pays for TLS on both hops too.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.deploy import Deployment, tls_args, tls_stats_context
from market.net.client import Client, parse_address
from market.net.flags import load_tls, service_parser
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


def start_echo_chain(logs: Path, tls_dir: Path | None = None) -> Deployment:
    """The echo, then the relay in front of it; with ``tls_dir`` (certificates of
    ./make_certs.sh) both serve TLS, the echo with a database's certificate and the
    relay with a frontend's."""
    stats_tls = tls_stats_context(tls_dir)
    echo = ServiceProcess("-m", "bench.echo", "echo", *tls_args(tls_dir, "product_db"),
                          log=logs / "echo.log", tls=stats_tls).start()
    try:
        relay = ServiceProcess("-m", "bench.echo", "relay", echo.where,
                               *tls_args(tls_dir, "seller_server"), log=logs / "relay.log",
                               tls=stats_tls).start()
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
        for flag in ("--tls-cert", "--tls-key", "--tls-ca"):
            sub.add_argument(flag, default="")
    args = parser.parse_args(argv)
    flags = service_parser(f"The {args.what} of the echo chain.", "BENCH_ECHO", 0).parse_args(
        ["--port", str(args.port), "--log-level", "WARNING", "--tls-cert", args.tls_cert,
         "--tls-key", args.tls_key, "--tls-ca", args.tls_ca])
    tls = load_tls(flags, mutual=args.what == "echo")  # the echo stands for a database
    service = (EchoService() if args.what == "echo"
               else RelayService(Client(args.echo, max_idle=1024,
                                        tls=tls.client if tls else None)))
    return serve(service, flags, tls)


if __name__ == "__main__":
    main()
