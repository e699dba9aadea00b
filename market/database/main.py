"""Starting a database: its flags beyond every service's, then the secret, TLS (mutual:
clients must present a certificate of the CA), its storage (a data directory, or etcd with
other processes of the same database) and serving."""
from __future__ import annotations

import argparse

from market.config import ETCD_TIMEOUT, KEY_QUOTA, KEY_TTL
from market.database.replica import Replica
from market.database.service import Database
from market.errors import JournalError
from market.net.flags import (
    configure_logging,
    env_default,
    exit_at_start,
    is_loopback,
    load_tls,
    service_parser,
)
from market.net.secret import Handshake, read_secret
from market.net.server import serve
from market.storage.etcd import Etcd


def database_parser(description: str, env_prefix: str, port: int) -> argparse.ArgumentParser:
    parser = service_parser(description, env_prefix, port)
    env_default(parser, "--data-dir", f"{env_prefix}_DATA_DIR", "",
                "keep a journal and snapshots here (default: memory only)")
    env_default(parser, "--etcd", "MARKET_ETCD", "",
                "keep the data in etcd instead (URL[,URL...] of its members, http:// or "
                "https://), one of two or more processes of this database, the active one or "
                "a standby (contract §16)")
    env_default(parser, "--replica-name", f"{env_prefix}_REPLICA_NAME", "",
                "this process's name among the processes of this database (default: random)")
    env_default(parser, "--key-ttl", "KEY_TTL", KEY_TTL,
                "seconds an idempotency key's first outcome is remembered (a resend with "
                "the key within it is told that outcome)", type=float)
    # For tests: shift this database's clock (Hello's time, deadlines) by SECONDS.
    parser.add_argument("--test-clock-offset", type=float, default=0.0, help=argparse.SUPPRESS)
    # For tests: a quota of clients' keys per account this low (KEY_QUOTA by default).
    parser.add_argument("--test-key-quota", type=int, default=KEY_QUOTA, help=argparse.SUPPRESS)
    return parser


def database_main(database: Database, args: argparse.Namespace) -> None:
    """Take the secret and the TLS files, open the data directory if asked (stop with a clear
    message if it is damaged), then serve."""
    configure_logging(database.kind, args.log_level)
    database.handshake = Handshake(read_secret(args.secret_file))
    tls = load_tls(args, mutual=True)
    database.clock_offset = args.test_clock_offset
    database.outcomes.ttl, database.outcomes.quota = args.key_ttl, args.test_key_quota
    if database.handshake.secret is None and not is_loopback(args.host):
        exit_at_start(f"{database.name}: refusing to listen on {args.host} without a "
                      "secret: beyond loopback anyone could change the data; pass --secret-file")
    if args.etcd and args.data_dir:
        exit_at_start(f"{database.name}: --etcd and --data-dir both name where the data is "
                      "kept: give one of them")
    if args.etcd:
        urls = [url.strip() for url in args.etcd.split(",") if url.strip()]
        try:
            etcd = Etcd(urls, ETCD_TIMEOUT, tls.client if tls else None)
        except ValueError as exc:
            exit_at_start(f"{database.name}: --etcd: {exc}")
        database.storage = Replica(etcd, database, args.replica_name or None)
    elif args.data_dir:
        try:
            database.open_data_dir(args.data_dir)
        except (JournalError, OSError) as exc:
            exit_at_start(f"{database.name}: cannot load the data directory: {exc}")
    serve(database, args, tls)
