"""EtcdLog's appends (market.storage.etcdlog), against an in-process stand-in for etcd's
transactions: group commit, a transaction sent again when etcd does not answer, and a log
that breaks, appending nothing more, when it cannot learn whether a batch went in."""
from __future__ import annotations

import json
import threading

import pytest

from market.errors import Deposed, EtcdError
from market.storage.etcd import unb64
from market.storage.etcdlog import EtcdLog, log_key, namespace

SPACE = namespace("product_db")
CLAIM = b'{"name": "a"}'


class StandIn:
    """etcd's keys in a dict, and its txn's comparisons (a value held, a key absent).
    ``lose`` answers: a number of transactions to drop the answer of, after applying them
    (``applied=True``) or before."""

    def __init__(self) -> None:
        self.keys: dict[bytes, bytes] = {SPACE + b"leader": CLAIM}
        self.txns = 0
        self.to_lose = 0
        self.applied_then_lost = True

    def lose(self, count: int, applied: bool) -> None:
        self.to_lose, self.applied_then_lost = count, applied

    def txn(self, compare: list[dict], success: list[dict]) -> tuple[bool, int]:
        self.txns += 1
        if self.to_lose and not self.applied_then_lost:
            self.to_lose -= 1
            raise EtcdError("no etcd member answered")
        held = all(self._holds(c) for c in compare)
        if held:
            for op in success:
                put = op["request_put"]
                self.keys[unb64(put["key"])] = unb64(put["value"])
        if self.to_lose:
            self.to_lose -= 1
            raise EtcdError("no etcd member answered")
        return held, self.txns

    def _holds(self, comparison: dict) -> bool:
        key = unb64(comparison["key"])
        if comparison["target"] == "CREATE":
            return key not in self.keys
        return self.keys.get(key) == unb64(comparison["value"])

    def get(self, key: bytes) -> tuple[bytes | None, int]:
        return self.keys.get(key), self.txns

    def batches(self) -> list[list[dict]]:
        found, seq = [], 1
        while log_key(SPACE, seq) in self.keys:
            found.append(json.loads(self.keys[log_key(SPACE, seq)]))
            seq += 1
        assert not any(key.startswith(SPACE + b"log/") and key > log_key(SPACE, seq - 1)
                       for key in self.keys), "a batch after a gap"
        return found


def make_log(etcd: StandIn, leading: list[bool] | None = None) -> EtcdLog:
    leading = leading if leading is not None else [True]
    return EtcdLog(etcd, "product_db", CLAIM, 0, lambda: {}, lambda: leading[0],
                   commit_delay=0.0)


def test_records_queued_meanwhile_go_in_one_transaction_in_their_order():
    etcd = StandIn()
    log = make_log(etcd)
    numbers = [log.append({"n": n}) for n in range(5)]
    log.wait(numbers[0])
    log.wait(numbers[-1])  # committed with the first: no transaction more
    assert etcd.txns == 1 and etcd.batches() == [[{"n": n} for n in range(5)]]
    log.append({"n": 5})
    log.sync()
    assert etcd.txns == 2 and etcd.batches()[1] == [{"n": 5}]


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
def test_a_transaction_etcd_did_not_answer_is_sent_again_and_in_once(applied):
    etcd = StandIn()
    log = make_log(etcd)
    etcd.lose(2, applied)
    log.append({"n": 1})
    log.sync()
    log.append({"n": 2})
    log.sync()
    assert etcd.batches() == [[{"n": 1}], [{"n": 2}]]


def test_a_batch_never_known_to_be_in_breaks_the_log_and_nothing_is_appended_after_it():
    etcd = StandIn()
    leading = [True]
    log = make_log(etcd, leading)
    log.append({"n": 1})
    log.sync()
    etcd.lose(1, applied=False)
    leading[0] = False  # the leadership ran out while etcd did not answer
    log.append({"n": 2})
    with pytest.raises(EtcdError):
        log.sync()
    leading[0] = True  # a later write must not go in without the batch before it
    log.append({"n": 3})
    with pytest.raises(EtcdError):
        log.sync()
    assert etcd.batches() == [[{"n": 1}]]


def test_another_leader_deposes_the_log_for_good():
    etcd = StandIn()
    log = make_log(etcd)
    etcd.keys[SPACE + b"leader"] = b'{"name": "b"}'
    log.append({"n": 1})
    with pytest.raises(Deposed):
        log.sync()
    etcd.keys[SPACE + b"leader"] = CLAIM
    log.append({"n": 2})
    with pytest.raises(Deposed):
        log.sync()
    assert etcd.batches() == []


def test_writers_waiting_at_once_share_transactions_and_all_return():
    etcd = StandIn()
    log = make_log(etcd)
    lock = threading.Lock()  # the database's lock: records are queued in order under it

    def write(n: int) -> None:
        with lock:
            number = log.append({"n": n})
        log.wait(number)
    threads = [threading.Thread(target=write, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = [record["n"] for batch in etcd.batches() for record in batch]
    assert sorted(written) == list(range(50)) and etcd.txns <= 50
