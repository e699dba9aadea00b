"""REPLICATED=1 ./run_all.sh (contract §16), in a temporary run directory on free ports:
three etcd members, two processes of each database on them and the frontends with both
addresses of each; status.sh shows each database process's role and each etcd member; a
write and a read go through the frontends; a process stopped by name rejoins as a standby;
stop_all.sh stops everything, twice safely. The same with TLS=1: etcd over TLS with client
certificates of the same CA."""
from __future__ import annotations

import json
import os
import re

from helpers.market import Api, wait_until
from helpers.scripts import REPLICATED_SERVICES, replicated_env, script

from market.net.client import Client
from market.net.tls import client_context
from market.ops.launch import alive
from market.storage.etcd import Etcd

DATABASE_PROCESSES = {"product_db": ["product_db", "product_db_2"],
                      "customer_db": ["customer_db", "customer_db_2"]}


def ports(env: dict) -> dict[str, int]:
    """Where each service of a replicated run listens (an etcd member: for its clients)."""
    etcd = int(env["ETCD_PORT"])
    return {"product_db": int(env["PRODUCT_DB_PORT"]),
            "product_db_2": int(env["PRODUCT_DB_2_PORT"]),
            "customer_db": int(env["CUSTOMER_DB_PORT"]),
            "customer_db_2": int(env["CUSTOMER_DB_2_PORT"]),
            "seller_server": int(env["SELLER_SERVER_PORT"]),
            "buyer_server": int(env["BUYER_SERVER_PORT"]),
            "etcd_1": etcd, "etcd_2": etcd + 2, "etcd_3": etcd + 4}


def recorded_pids(env: dict) -> dict[str, int]:
    pids = {}
    for name in REPLICATED_SERVICES:
        path = os.path.join(env["RUN_DIR"], f"{name}.pid")
        if os.path.exists(path):
            with open(path) as pid_file:
                pids[name] = int(pid_file.read())
    return pids


def status_rows(env: dict) -> tuple[int, dict[str, dict]]:
    result = script("status.sh", env, "--json")
    assert result.stderr == ""
    return result.returncode, {row["name"]: row for row in json.loads(result.stdout)}


def all_up(env: dict) -> bool:
    """status.sh exits 0 (every row up: the copies in use, one process of each active)."""
    return script("status.sh", env).returncode == 0


def assert_roles(rows: dict[str, dict]) -> None:
    """One active and one standby per database, one etcd leader and two followers."""
    for database, names in DATABASE_PROCESSES.items():
        assert sorted(rows[name]["role"] for name in names) == ["active", "standby"], database
    assert sorted(rows[f"etcd_{n}"]["role"] for n in (1, 2, 3)) == [
        "follower", "follower", "leader"]
    for n in (1, 2, 3):
        member = rows[f"etcd_{n}"]
        assert member["state"] == "up" and member["db_size_bytes"] > 0, member
        assert 0 < member["db_size_in_use_bytes"] <= member["db_size_bytes"], member
    assert {row["role"] for name, row in rows.items() if "server" in name} == {None}


def write_and_read(env: dict, seller_name: str, tls=None) -> None:
    """An item listed through the seller frontend, seen through the buyer frontend."""
    seller = Api(Client(("127.0.0.1", int(env["SELLER_SERVER_PORT"])), tls=tls))
    seller.register(seller_name)
    item_id = seller("RegisterItemForSale", name="lamp", category=1, keywords=["desk"],
                     condition="new", price=2.5, quantity=3)["item_id"]
    buyer = Api(Client(("127.0.0.1", int(env["BUYER_SERVER_PORT"])), tls=tls))
    buyer.register(f"{seller_name}-buyer")
    assert buyer("GetItem", item_id=item_id)["item"]["price"] == 2.5
    seller.client.close()
    buyer.client.close()


def stop_everything(env: dict, pids: dict[str, int]) -> None:
    stopped = script("stop_all.sh", env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert sorted(re.findall(r"^stopped (\S+) ", stopped.stdout, re.MULTILINE)) == sorted(
        REPLICATED_SERVICES), stopped.stdout
    # the etcd members last, after the databases that keep their data there
    order = re.findall(r"^stopped (\S+) ", stopped.stdout, re.MULTILINE)
    assert order[-3:] == ["etcd_1", "etcd_2", "etcd_3"], order
    assert wait_until(lambda: not any(map(alive, pids.values())), timeout=10)
    assert recorded_pids(env) == {}
    twice = script("stop_all.sh", env)
    assert twice.returncode == 0 and "nothing to stop" in twice.stdout


def test_replicated_run_all_starts_etcd_and_two_of_each_database_and_stop_all_stops_all(
        tmp_path):
    env = replicated_env(tmp_path)
    run_dir = tmp_path / "run"
    try:
        started = script("run_all.sh", env)
        assert started.returncode == 0, started.stdout + started.stderr
        where = ports(env)
        for name in REPLICATED_SERVICES:
            assert re.search(rf"^{name} +ready on 127\.0\.0\.1:{where[name]} \(pid \d+\), "
                             rf"log {re.escape(str(run_dir))}/{name}\.log$",
                             started.stdout, re.MULTILINE), started.stdout
        pids = recorded_pids(env)
        assert sorted(pids) == sorted(REPLICATED_SERVICES) and all(map(alive, pids.values()))
        urls = ",".join(f"http://127.0.0.1:{where[f'etcd_{n}']}" for n in (1, 2, 3))
        assert f"keep their data in etcd at {urls}" in started.stdout
        for n in (1, 2, 3):  # each member's data in RUN_DIR/etcd/NAME, its owner's only
            data = run_dir / "etcd" / f"etcd_{n}"
            assert (data / "member").is_dir() and data.stat().st_mode & 0o777 == 0o700
        # the databases keep nothing in the data directory: their data is in etcd
        assert not (run_dir / "data").exists()

        assert wait_until(lambda: all_up(env), timeout=15)
        table = script("status.sh", env).stdout.splitlines()
        assert table[0].split()[3:5] == ["STATE", "ROLE"]
        assert [line.split()[0] for line in table[1:10]] == REPLICATED_SERVICES
        for line in table[1:10]:
            name = line.split()[0]
            assert line.split()[2:4] == [f"127.0.0.1:{where[name]}", "up"], line
        assert [line for line in table[10:] if line.startswith("etcd_1: etcd 3.5")], table
        code, rows = status_rows(env)
        assert code == 0
        assert_roles(rows)

        write_and_read(env, "sam")

        # A process stopped by name is down (status.sh exits 2); run_all.sh starts it alone
        # again, and it rejoins as a standby.
        standby = next(name for name in DATABASE_PROCESSES["product_db"]
                       if rows[name]["role"] == "standby")
        one = script("stop_all.sh", env, standby)
        assert one.returncode == 0 and one.stdout.startswith(f"stopped {standby} "), one.stdout
        code, rows = status_rows(env)
        assert code == 2 and rows[standby]["state"] == "down"
        assert {row["state"] for name, row in rows.items() if name != standby} == {"up"}
        again = script("run_all.sh", env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.count("is already running") == len(REPLICATED_SERVICES) - 1
        assert wait_until(lambda: all_up(env), timeout=15)
        code, rows = status_rows(env)
        assert rows[standby]["role"] == "standby"
        assert_roles(rows)
        pids = recorded_pids(env)
    finally:
        stop_everything(env, recorded_pids(env) or {})


def test_replicated_with_tls_runs_etcd_over_tls_with_client_certificates(tmp_path):
    env = {**replicated_env(tmp_path), "TLS": "1"}
    tls = tmp_path / "run" / "tls"
    try:
        started = script("run_all.sh", env)
        assert started.returncode == 0, started.stdout + started.stderr
        assert (tls / "etcd.key").stat().st_mode & 0o777 == 0o600
        url = f"https://127.0.0.1:{env['ETCD_PORT']}"
        assert f"keep their data in etcd at {url}," in started.stdout
        assert wait_until(lambda: all_up(env), timeout=15)
        code, rows = status_rows(env)
        assert code == 0
        assert_roles(rows)
        assert {rows[f"etcd_{n}"]["url"].split(":")[0] for n in (1, 2, 3)} == {"https"}

        # etcd asks for a client certificate of the CA: without one, or in plaintext, no
        # answer; with a database's, an answer.
        ca = str(tls / "ca.crt")
        assert not Etcd([url], 2.0, client_context(ca)).status()[0]["up"]
        assert not Etcd([url.replace("https", "http")], 2.0).status()[0]["up"]
        with_cert = client_context(ca, str(tls / "product_db.crt"), str(tls / "product_db.key"))
        assert Etcd([url], 2.0, with_cert).status()[0]["up"]

        write_and_read(env, "tess", tls=client_context(ca))
        pids = recorded_pids(env)
    finally:
        pids = recorded_pids(env)
        stop_everything(env, pids)
    assert not list((tmp_path / "run").glob("*.tls"))
    assert not list((tmp_path / "run").glob("*.etcd"))
