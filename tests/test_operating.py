"""What an operator sees (contract §13): status.sh with a database stopped (frontends
degraded, the database 'no answer' in operator words, exit status 2), a link that goes and
comes back logged once each way with the failures between folded, the ready line
time-stamped in the log, and a seller's forbidden change kept out of the WARNINGs."""
from __future__ import annotations

import json
import os
import re
import signal

from helpers.market import listing, sigstop, start_market, wait_until
from helpers.scripts import run_env, script

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \w+\[\d+\] INFO ")


def status(env: dict) -> tuple[int, dict[str, dict]]:
    result = script("status.sh", env, "--json")
    return result.returncode, {row["name"]: row for row in json.loads(result.stdout)}


def test_a_stopped_database_is_no_answer_and_its_frontends_degraded(tmp_path):
    env = {**run_env(tmp_path), "DB_TIMEOUT": "1"}
    assert script("run_all.sh", env).returncode == 0
    try:
        assert wait_until(lambda: status(env)[0] == 0, timeout=10)
        pid = int(open(os.path.join(env["RUN_DIR"], "customer_db.pid")).read())
        os.kill(pid, signal.SIGSTOP)
        try:
            def both_degraded() -> bool:
                _, rows = status(env)
                return all(rows[name]["state"] == "degraded"
                           for name in ("seller_server", "buyer_server"))
            assert wait_until(both_degraded, timeout=15)
            code, rows = status(env)
            assert code == 2
            assert rows["customer_db"]["state"] == "no answer"
            assert "did not answer within" in rows["customer_db"]["error"]
            assert "storage" not in rows["customer_db"]["error"]  # no words for shoppers
            for name in ("seller_server", "buyer_server"):
                assert "cannot reach the customer database" in rows[name]["error"]
            assert rows["product_db"]["state"] == "up"
            table = script("status.sh", env)
            assert table.returncode == 2 and "degraded" in table.stdout
        finally:
            os.kill(pid, signal.SIGCONT)
        assert wait_until(lambda: status(env)[0] == 0, timeout=15)
    finally:
        script("stop_all.sh", env)


def test_a_link_that_goes_and_comes_back_is_logged_once_each_way(tmp_path, unique):
    """A stopped database: one WARNING when the frontend's link to it goes, however many
    requests fail meanwhile, and one INFO when it answers again, the failures folded."""
    market = start_market(db_timeout=1.0, log_dir=tmp_path)
    log = tmp_path / "buyer_server.py.log"
    try:
        buyer = market.buyer()
        buyer.register(unique("buyer"))
        resume = sigstop(market.customer_db)
        try:
            for _ in range(6):
                buyer.error("DisplayCart")
        finally:
            resume()
        def back() -> list[str]:
            return [line for line in log.read_text().splitlines()
                    if "the customer database at" in line and "answers again after" in line]
        assert wait_until(back, timeout=10)
        went = [line for line in log.read_text().splitlines()
                if "cannot reach the customer database" in line]
        back = back()
        assert len(went) == 1 and " WARNING " in went[0], went
        assert len(back) == 1 and " INFO " in back[0]
        assert re.search(r"\((\d+) more failures\)", back[0]).group(1) != "0"
    finally:
        market.stop()


def test_the_ready_line_is_time_stamped_in_the_log(tmp_path):
    env = run_env(tmp_path)
    assert script("run_all.sh", env).returncode == 0
    try:
        for name in ("product_db", "customer_db", "seller_server", "buyer_server"):
            lines = open(os.path.join(env["RUN_DIR"], f"{name}.log")).read().splitlines()
            ready = [line for line in lines if " ready on " in line]
            assert ready and all(STAMPED.match(line) for line in ready), lines
            assert all(STAMPED.match(line) or line.startswith(" ") for line in lines), lines
    finally:
        script("stop_all.sh", env)


def test_a_seller_changing_anothers_item_is_no_warning(tmp_path, unique):
    logs = tmp_path / "logs"
    market = start_market(log_dir=logs)
    try:
        owner, other = market.seller(), market.seller()
        owner.register(unique("owner"))
        other.register(unique("other"))
        item_id = listing(owner)
        assert other.error("ChangeItemPrice", item_id=item_id, price=2) == "forbidden"
        for log in logs.iterdir():
            assert "forbidden" not in "".join(line for line in log.read_text().splitlines()
                                              if " WARNING " in line), log
    finally:
        market.stop()
