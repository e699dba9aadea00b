"""What every service takes on its command line (each flag with an environment variable),
and how it logs: UTC time, ``service[pid]``, level, logger, message.
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
    return parser


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
