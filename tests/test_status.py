"""status.sh over a real run_all.sh run (temporary run directory, free ports): up and
down as they are, --json, the exit status, nothing changed; and run_all.sh's log
generations."""
from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from helpers.market import wait_until
from helpers.scripts import PORT_VARIABLES, SERVICES, run_env, script

from market import config
from market.net.client import Client
from market.ops.launch import alive
from protocol import ApiError


@pytest.fixture
def run(tmp_path):
    """A market started by run_all.sh in its own run directory; its environment."""
    env = run_env(tmp_path)
    started = script("run_all.sh", env)
    assert started.returncode == 0, started.stderr
    yield env
    script("stop_all.sh", env)


def status(env: dict, *args: str) -> tuple[int, str]:
    result = script("status.sh", env, *args)
    assert result.stderr == ""
    return result.returncode, result.stdout


def rows(env: dict) -> dict[str, dict]:
    code, out = status(env, "--json")
    return {row["name"]: row for row in json.loads(out)}


def run_dir_contents(env: dict) -> dict[str, bytes]:
    """Every file in the run directory and its data directory but the logs, with contents."""
    contents = {}
    for directory, _, names in os.walk(env["RUN_DIR"]):
        for name in names:
            if not name.endswith(".log"):
                with open(os.path.join(directory, name), "rb") as f:
                    contents[os.path.join(directory, name)] = f.read()
    return contents


def test_status_shows_each_service_up_or_down_and_exits_accordingly(run):
    assert wait_until(lambda: status(run)[0] == 0, timeout=10)  # the copies are in use
    code, table = status(run)
    assert code == 0, table
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "PID", "ADDRESS", "STATE", "ROLE", "UPTIME", "OK/S",
                                "ERRORS", "P99", "CONNS", "MEMORY"]
    assert [line.split()[0] for line in lines[1:]] == SERVICES
    for line, variable in zip(lines[1:], PORT_VARIABLES):
        assert line.split()[2:4] == [f"127.0.0.1:{run[variable]}", "up"], line

    seller = Client(("127.0.0.1", int(run["SELLER_SERVER_PORT"])))
    for _ in range(10):
        seller.call("Hello")
    for _ in range(5):
        with pytest.raises(ApiError):
            seller.call("NoSuchOp")
    seller.close()
    before = run_dir_contents(run)
    services = rows(run)
    assert {name: row["state"] for name, row in services.items()} == dict.fromkeys(SERVICES, "up")
    seller_row = services["seller_server"]
    assert seller_row["errors"] == 5 and seller_row["errors_by_code"] == {"unknown_op": 5}
    assert seller_row["ok_per_s"] == round(10 / seller_row["stats"]["window_s"], 2)
    assert seller_row["stats"]["ops"]["Hello"]["ok"] == 10
    assert services["product_db"]["stats"]["service"] == "product_db"  # it proved the secret
    assert run_dir_contents(run) == before  # status.sh changed nothing

    buyer_pid = services["buyer_server"]["pid"]
    os.kill(buyer_pid, signal.SIGTERM)  # stopped by hand, not by stop_all.sh
    assert wait_until(lambda: not alive(buyer_pid), timeout=10)
    code, table = status(run)
    assert code == 2
    buyer_line = next(line for line in table.splitlines() if line.startswith("buyer_server"))
    assert buyer_line.split()[1:4] == ["-", "-", "down"], table
    services = rows(run)
    assert services["buyer_server"]["state"] == "down"
    assert [name for name, row in services.items() if row["state"] == "up"] == SERVICES[:3]

    assert script("run_all.sh", run).returncode == 0  # starts the buyer frontend again
    # degraded (1) until its copies are in use, a moment after it is ready
    assert wait_until(lambda: status(run)[0] == 0, timeout=10)


def test_help_asks_nothing(tmp_path):
    env = {**os.environ, "RUN_DIR": str(tmp_path / "run")}
    code, out = status(env, "--help")
    assert code == 0 and out.startswith("Usage: ./status.sh") and "--json" in out
    assert f"within {config.STATUS_TIMEOUT:g} s" in out  # market/config.py's
    assert not os.path.exists(env["RUN_DIR"])
    result = script("status.sh", env, "--bogus")
    assert result.returncode == 64 and "unknown argument" in result.stderr


def test_nothing_started_is_all_down(tmp_path):
    env = {**os.environ, "RUN_DIR": str(tmp_path / "run"), "PYTHON": sys.executable}
    code, out = status(env, "--json")
    assert code == 2
    assert [(row["name"], row["state"]) for row in json.loads(out)] == [
        (name, "down") for name in SERVICES]


def test_run_all_keeps_five_log_generations(run):
    log = os.path.join(run["RUN_DIR"], "buyer_server.log")
    for generation in range(1, 5):  # as if it had started five times already
        with open(f"{log}.{generation}", "w") as old:
            old.write(f"start {generation} ago\n")
    current = open(log).read()
    assert script("stop_all.sh", run, "buyer_server").returncode == 0
    assert script("run_all.sh", run).returncode == 0
    kept = {name: open(os.path.join(run["RUN_DIR"], name)).read()
            for name in os.listdir(run["RUN_DIR"]) if name.startswith("buyer_server.log.")}
    assert kept == {"buyer_server.log.1": open(f"{log}.1").read(),
                    "buyer_server.log.2": "start 1 ago\n", "buyer_server.log.3": "start 2 ago\n",
                    "buyer_server.log.4": "start 3 ago\n"}
    assert kept["buyer_server.log.1"].startswith(current)
    assert " ready on " in open(log).read()
