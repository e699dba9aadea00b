"""run_all.sh and stop_all.sh, in a temporary run directory on free, non-default ports."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
from helpers.market import ROOT, Api, wait_until
from helpers.scripts import (
    PORT_VARIABLES,
    SERVICES,
    consecutive_free_ports,
    run_env,
    script,
)

from market import config
from market.net.client import Client
from market.ops.launch import alive
from protocol import ApiError


@pytest.fixture
def env(tmp_path):
    """The environment of one run: its own run directory and four free ports."""
    yield run_env(tmp_path)
    script("stop_all.sh", env={**os.environ, "RUN_DIR": str(tmp_path / "run")})  # just in case


def recorded_pids(run_dir: str, names=SERVICES) -> dict[str, int]:
    pids = {}
    for name in names:
        path = os.path.join(run_dir, f"{name}.pid")
        if os.path.exists(path):
            with open(path) as pid_file:
                pids[name] = int(pid_file.read())
    return pids


def test_run_all_then_stop_all(env):
    started = script("run_all.sh", env)
    assert started.returncode == 0, started.stderr
    for name, variable in zip(SERVICES, PORT_VARIABLES):
        assert re.search(rf"^{name} +ready on 127\.0\.0\.1:{env[variable]} \(pid \d+\), "
                         rf"log {re.escape(env['RUN_DIR'])}/{name}\.log$",
                         started.stdout, re.MULTILINE), started.stdout
    pids = recorded_pids(env["RUN_DIR"])
    assert sorted(pids) == sorted(SERVICES) and all(map(alive, pids.values()))

    # All four answer: each frontend reaches both databases.
    seller = Api(Client(("127.0.0.1", int(env["SELLER_SERVER_PORT"]))))
    seller.register("sam")
    item_id = seller("RegisterItemForSale", name="lamp", category=1, keywords=[],
                     condition="new", price=2.5, quantity=1)["item_id"]
    buyer = Api(Client(("127.0.0.1", int(env["BUYER_SERVER_PORT"]))))
    buyer.register("bea")
    assert buyer("GetItem", item_id=item_id)["item"]["price"] == 2.5

    again = script("run_all.sh", env)
    assert again.returncode == 0 and again.stdout.count("is already running") == 4
    assert recorded_pids(env["RUN_DIR"]) == pids

    stopped = script("stop_all.sh", env)
    assert stopped.returncode == 0 and stopped.stdout.count("stopped ") == 4, stopped.stdout
    assert wait_until(lambda: not any(map(alive, pids.values())))
    assert recorded_pids(env["RUN_DIR"]) == {}
    with pytest.raises(ApiError) as down:
        seller("DisplayItemsForSale")
    assert down.value.code == "unavailable"

    twice = script("stop_all.sh", env)
    assert twice.returncode == 0 and "nothing to stop" in twice.stdout


def test_busy_port_fails_clearly(env):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        env["SELLER_SERVER_PORT"] = str(squatter.getsockname()[1])
        failed = script("run_all.sh", env)
    assert failed.returncode == 1
    assert "seller_server did not start: its port is already in use" in failed.stderr
    assert "--- last lines of" in failed.stderr and "Address already in use" in failed.stderr
    # What this run had started is stopped again, and nothing is left recorded.
    stopped = [int(pid) for pid in re.findall(r"stopped \w+ \(pid (\d+)\)", failed.stderr)]
    assert len(stopped) == 2 and not any(map(alive, stopped))
    assert recorded_pids(env["RUN_DIR"]) == {}


def test_stop_all_leaves_a_reused_pid_alone(env):
    """A pid file naming some other program (the pid was reused) does not get it killed."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        os.makedirs(env["RUN_DIR"])
        with open(os.path.join(env["RUN_DIR"], "product_db.pid"), "w") as pid_file:
            pid_file.write(str(other.pid))
        result = script("stop_all.sh", env)
        assert result.returncode == 0 and "product_db was not running" in result.stdout
        assert other.poll() is None
        assert recorded_pids(env["RUN_DIR"]) == {}
    finally:
        other.kill()
        other.wait()


def test_readme_walkthrough(env):
    """The README's walkthrough runs as pasted and prints what the README shows."""
    walkthrough = (ROOT / "README.md").read_text().split("## Walkthrough", 1)[1]
    commands, after = walkthrough.split("```sh\n", 1)[1].split("```", 1)
    shown = after.split("prints:\n\n```\n", 1)[1].split("```", 1)[0]  # what the text after shows
    result = subprocess.run(["bash", "-e", "-c", commands], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    assert shown in result.stdout
    assert result.stdout.count("stopped ") == 4


@pytest.mark.parametrize("name", ["run_all.sh", "stop_all.sh"])
def test_help_starts_and_stops_nothing(env, name):
    for flag in ("--help", "-h"):
        result = script(name, env, flag)
        assert result.returncode == 0 and result.stderr == ""
        assert result.stdout.startswith(f"Usage: ./{name}") and "RUN_DIR" in result.stdout
        assert not os.path.exists(env["RUN_DIR"])  # nothing started, nothing recorded
    if name == "run_all.sh":
        for variable in ["SELLER_FRONTENDS", "BUYER_FRONTENDS", *PORT_VARIABLES,
                         "MARKET_SECRET_FILE", "PYTHON"]:
            assert variable in result.stdout
        # The defaults it names are market/config.py's, where each is defined once.
        assert f"database's port ({config.DEFAULT_PRODUCT_DB_PORT})" in result.stdout
        assert f"database's port ({config.DEFAULT_CUSTOMER_DB_PORT})" in result.stdout
        seller, buyer = config.DEFAULT_SELLER_FRONTEND_PORT, config.DEFAULT_BUYER_FRONTEND_PORT
        assert f"sellers on {seller}, {seller + 2}, ...)" in result.stdout
        assert f"buyers on {buyer}, {buyer + 2}, ...)" in result.stdout
        assert f"gets {config.START_TIMEOUT} s" in result.stdout
    else:
        assert f"STOP_GRACE    seconds between TERM and KILL (default {config.STOP_GRACE})" \
            in result.stdout


@pytest.mark.parametrize("name, args", [("run_all.sh", ["--bogus"]), ("run_all.sh", ["now"]),
                                        ("stop_all.sh", ["--bogus"])])
def test_unknown_argument(env, name, args):
    result = script(name, env, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert args[0] in result.stderr and f"Usage: ./{name}" in result.stderr
    assert not os.path.exists(env["RUN_DIR"])


def test_several_frontends(env):
    """Two frontends per role, interleaved: sellers on first, first + 2, buyers on
    first + 1, first + 3 (so 8001 is always a seller's, 8002 a buyer's)."""
    first = consecutive_free_ports(4)
    del env["BUYER_SERVER_PORT"]  # its default is the port after the first seller's
    env.update(SELLER_SERVER_PORT=str(first), SELLER_FRONTENDS="2", BUYER_FRONTENDS="2")
    expected = {"product_db": int(env["PRODUCT_DB_PORT"]),
                "customer_db": int(env["CUSTOMER_DB_PORT"]),
                "seller_server": first, "seller_server_2": first + 2,
                "buyer_server": first + 1, "buyer_server_2": first + 3}
    started = script("run_all.sh", env)
    assert started.returncode == 0, started.stderr
    servers = (f"SELLER_SERVERS=127.0.0.1:{first},127.0.0.1:{first + 2} "
               f"BUYER_SERVERS=127.0.0.1:{first + 1},127.0.0.1:{first + 3}")
    assert f"\nexport {servers}\n" in started.stdout, started.stdout
    for variable, script_name in [("SELLER_SERVERS", "seller_client.py"),
                                  ("BUYER_SERVERS", "buyer_client.py")]:  # the line works
        addresses = servers.split(f"{variable}=")[1].split()[0]
        cli = subprocess.run([sys.executable, str(ROOT / script_name)], input="rating 1\n",
                             env={**env, variable: addresses}, capture_output=True, text=True,
                             timeout=30)
        assert "Log in first" in cli.stderr and "not the" not in cli.stderr, cli.stderr
    for name, port in expected.items():
        assert re.search(rf"^{name} +ready on 127\.0\.0\.1:{port} \(pid \d+\), "
                         rf"log {re.escape(env['RUN_DIR'])}/{name}\.log$",
                         started.stdout, re.MULTILINE), started.stdout
    pids = recorded_pids(env["RUN_DIR"], expected)
    assert sorted(pids) == sorted(expected) and all(map(alive, pids.values()))
    for name, port in expected.items():
        if "server" in name:
            client = Client(("127.0.0.1", port))
            assert client.call("Hello")["service"] == name.split("_")[0], name
            client.close()
    # All share the two databases: what one seller frontend lists, another buyer one sees.
    seller = Api(Client(("127.0.0.1", expected["seller_server_2"])))
    seller.register("sam")
    item_id = seller("RegisterItemForSale", name="lamp", category=1, keywords=[],
                     condition="new", price=2.5, quantity=1)["item_id"]
    buyer = Api(Client(("127.0.0.1", expected["buyer_server"])))
    buyer.register("bea")
    assert buyer("GetItem", item_id=item_id)["item"]["price"] == 2.5
    seller.client.close()
    buyer.client.close()

    again = script("run_all.sh", env)
    assert again.returncode == 0 and again.stdout.count("is already running") == 6
    # Sellers planned from first - 1 on: a third would take the port buyer_server_2 holds.
    more = script("run_all.sh", {**env, "SELLER_FRONTENDS": "3",
                                 "SELLER_SERVER_PORT": str(first - 1)})
    assert more.returncode == 1
    assert (f"seller_server_3 cannot listen on port {first + 3}: buyer_server_2 "
            f"(pid {pids['buyer_server_2']})") in more.stderr, more.stderr
    assert recorded_pids(env["RUN_DIR"], [*expected, "seller_server_3"]) == pids

    for wrong in ("buyer", "nosuch"):
        refused = script("stop_all.sh", env, "seller_server", wrong)
        assert refused.returncode == 2 and refused.stdout == ""
        assert f"no service named '{wrong}'" in refused.stderr
        assert all(name in refused.stderr for name in expected), refused.stderr
    assert recorded_pids(env["RUN_DIR"], expected) == pids and all(map(alive, pids.values()))

    one = script("stop_all.sh", env, "buyer_server")
    assert one.stdout == f"stopped buyer_server (pid {pids['buyer_server']})\n", one.stdout
    stopped = script("stop_all.sh", env)  # the rest, without a word on the one stopped
    assert (stopped.returncode, stopped.stderr) == (0, "")
    assert "not running" not in stopped.stdout and "buyer_server " not in stopped.stdout
    for name, pid in pids.items():
        if name != "buyer_server":
            assert f"stopped {name} (pid {pid})" in stopped.stdout, stopped.stdout
    assert wait_until(lambda: not any(map(alive, pids.values())))
    assert recorded_pids(env["RUN_DIR"], expected) == {}

    for name in ("seller_server_2", "buyer_server"):  # still known, by their logs
        not_running = script("stop_all.sh", env, name)
        assert (not_running.returncode, not_running.stdout) == (0, f"{name} is not running\n")
    twice = script("stop_all.sh", env)
    assert twice.returncode == 0 and "nothing to stop" in twice.stdout
