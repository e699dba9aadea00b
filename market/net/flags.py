"""What every service takes on its command line (each flag with an environment variable),
and how it logs: UTC time, ``service[pid]``, level, logger, message.

The TLS flags are defined here once: ``--tls-cert``, ``--tls-key`` and ``--tls-ca`` of
every service (``service_parser``, loaded by ``load_tls``) and the ``--tls-ca`` of a client
(``add_tls_ca_flag``: the CLIs, status.sh, the benchmark).
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
import time
from typing import Any, NoReturn

from market.config import (
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOG_LEVEL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_TIMEOUT,
)
from market.errors import TlsError
from market.net.tls import TlsFiles

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger(__name__)


def env_default(parser: argparse.ArgumentParser, flag: str, env: str, default: Any,
                help: str, **kwargs: Any) -> None:
    """Add ``flag`` whose default comes from environment variable ``env``."""
    value = os.environ.get(env, default)
    shown = f"env {env}, default {default}" if default not in ("", None) else f"env {env}"
    parser.add_argument(flag, default=value, help=f"{help} ({shown})", **kwargs)


def service_parser(description: str, env_prefix: str, port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    env_default(parser, "--host", f"{env_prefix}_HOST", DEFAULT_HOST, "address to bind")
    env_default(parser, "--port", f"{env_prefix}_PORT", port, "port to listen on (0: any free)",
                type=int)
    env_default(parser, "--idle-timeout", "IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT,
                "seconds an idle connection is kept open", type=float)
    env_default(parser, "--read-timeout", "READ_TIMEOUT", DEFAULT_READ_TIMEOUT,
                "seconds a client may take to finish sending a request line, or to take "
                "a reply, before the connection is closed", type=float)
    env_default(parser, "--max-connections", "MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS,
                "connections served at once; more get 'unavailable' and are closed", type=int)
    env_default(parser, "--log-level", "LOG_LEVEL", DEFAULT_LOG_LEVEL,
                "least severe log lines written: DEBUG (a line per request), INFO, WARNING "
                "(what needs an operator) or ERROR", type=str.upper, choices=LOG_LEVELS)
    env_default(parser, "--secret-file", "MARKET_SECRET_FILE", "",
                "file holding the deployment's shared secret: databases serve only "
                "connections that prove they know it, frontends prove it")
    add_tls_flags(parser)
    return parser


TLS_FLAGS = ("--tls-cert", "--tls-key", "--tls-ca")


def add_tls_flags(parser: argparse.ArgumentParser, client: bool = False) -> None:
    """A service's three TLS flags: all three turn TLS on (serving TLS only, and dialling
    other services over TLS); none leaves it off. With ``client``, the flags of a tool that
    dials the services (status.sh, the benchmark): the CA, and a certificate to show to
    the databases, which ask for one."""
    if client:
        cert_help = ("PEM certificate (of the CA of --tls-ca) to show to a database over TLS, "
                     "which asks for one")
    else:
        cert_help = ("PEM certificate of this service (./make_certs.sh makes one per "
                     "service); with --tls-key and --tls-ca it serves TLS only, and a frontend "
                     "dials its databases over TLS, presenting it; SIGHUP reloads the files")
    env_default(parser, "--tls-cert", "MARKET_TLS_CERT", "", cert_help, metavar="FILE")
    env_default(parser, "--tls-key", "MARKET_TLS_KEY", "",
                "PEM private key of --tls-cert (readable by its owner only)", metavar="FILE")
    add_tls_ca_flag(parser, None if client else
                    "the CA certificate (PEM) that signed the services' certificates: a "
                    "frontend verifies its databases with it, a database its clients' "
                    "certificates")


def add_tls_ca_flag(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """A client's ``--tls-ca``: with it, connect over TLS and verify the server's
    certificate against this CA and the host name dialled (no plaintext fallback)."""
    env_default(parser, "--tls-ca", "MARKET_TLS_CA", "",
                help or "the marketplace's CA certificate (PEM; run_all.sh prints the line "
                        "to export): connect over TLS, verifying the server's certificate "
                        "against it and the host name dialled", metavar="FILE")


def load_tls(args: argparse.Namespace, mutual: bool) -> TlsFiles | None:
    """The service's TLS files loaded (None without any of the three flags); a missing
    flag or a file that does not load stops the start with a sentence naming it.
    ``mutual``: clients must present a certificate signed by the CA (a database)."""
    given = {flag: getattr(args, flag[2:].replace("-", "_")) for flag in TLS_FLAGS}
    if not any(given.values()):
        return None
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        exit_at_start(f"TLS needs all of {', '.join(TLS_FLAGS)}; {' and '.join(missing)} "
                      f"{'is' if len(missing) == 1 else 'are'} missing (./make_certs.sh "
                      "makes the files; MARKET_TLS_CERT, MARKET_TLS_KEY and MARKET_TLS_CA "
                      "set them too)")
    try:
        return TlsFiles(given["--tls-cert"], given["--tls-key"], given["--tls-ca"], mutual)
    except TlsError as exc:
        exit_at_start(f"cannot start with TLS: {exc}")


def configure_logging(service: str, level: str) -> None:
    """Log to stderr from ``level`` up, each line: UTC time, ``service[pid]``, level, the
    logger (``market.<module>``), message. Only the first call of a process configures."""
    if logging.root.handlers:
        return
    formatter = logging.Formatter(f"%(asctime)s.%(msecs)03dZ {service}[%(process)d] "
                                  "%(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    logging.root.addHandler(handler)
    logging.root.setLevel(level.upper())


def exit_at_start(message: str) -> NoReturn:
    """Log why the service cannot start (CRITICAL, time-stamped) and exit with status 1."""
    configure_logging(os.path.basename(sys.argv[0]).removesuffix(".py"), DEFAULT_LOG_LEVEL)
    log.critical("%s", message)
    sys.exit(1)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
