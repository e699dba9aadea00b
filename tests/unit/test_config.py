"""market/config.py: the defaults as the shell scripts read them, and how they fit together."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from market import config

ROOT = Path(__file__).resolve().parent.parent.parent  # the project directory


def test_the_scripts_read_values_on_one_line(capsys):
    assert config.main(["DEFAULT_PRODUCT_DB_PORT", "STOP_GRACE", "STATUS_TIMEOUT",
                        "DEFAULT_DB_TIMEOUT"]) == 0
    assert capsys.readouterr().out == (f"{config.DEFAULT_PRODUCT_DB_PORT} {config.STOP_GRACE} "
                                       f"{config.STATUS_TIMEOUT:g} {config.DEFAULT_DB_TIMEOUT:g}\n")


@pytest.mark.parametrize("names", [[], ["NO_SUCH_NAME"], ["main"], ["sys"]])
def test_an_unknown_name_is_refused(capsys, names):
    assert config.main(names) == 2
    assert capsys.readouterr().out == ""


def test_run_as_a_module_from_the_project_directory():
    result = subprocess.run([sys.executable, "-m", "market.config", "DEFAULT_CUSTOMER_DB_PORT"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, f"{config.DEFAULT_CUSTOMER_DB_PORT}\n")


def test_the_defaults_fit_together():
    # run_all.sh starts the buyers on the port after the sellers' (interleaved), so the
    # CLIs' defaults reach the first frontend of each role.
    assert config.DEFAULT_BUYER_FRONTEND_PORT == config.DEFAULT_SELLER_FRONTEND_PORT + 1
    assert config.STOP_GRACE > config.DRAIN_TIMEOUT  # a stopping service drains before KILL
    assert config.HASH_COST_MIN <= config.DEFAULT_HASH_COST <= config.HASH_COST_MAX
    assert config.CLI_TIMEOUT > config.DEFAULT_DB_TIMEOUT
    # A frontend's pool of each database fits in the database's connection cap many times.
    assert config.DEFAULT_MAX_CONNECTIONS >= 16 * config.DEFAULT_DB_POOL
    # A follower polls again well within its lease, so a quiet database keeps it holding;
    # a session is answered from a copy for at most half a lease.
    assert config.LONG_POLL_WAIT < config.LEASE / 2 < config.FOLLOWER_FORGOTTEN
