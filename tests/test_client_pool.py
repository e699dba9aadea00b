"""The pooled client across a database restart: connections the server closed while idle
are replaced without the caller seeing a failure (a read's first try skips the look
before sending and is sent again)."""
from __future__ import annotations

from market.net.client import Client
from market.ops.launch import ServiceProcess
from market.product import api as product_api
from protocol import ApiError


def not_found(client: Client) -> bool:
    try:
        client.call(product_api.GET_ITEM, {"item_id": 10 ** 6})
    except ApiError as error:
        return error.code == "not_found"
    return False


def test_reads_after_a_restart_go_through_on_fresh_connections():
    database = ServiceProcess("product_db.py").start()
    client = Client(database.address, timeout=2.0, pool_size=4)
    try:
        assert not_found(client)
        assert client.pool_stats()["open"] == 1
        database.stop()
        database.restart()  # the pooled connection is now closed by the old process
        assert not_found(client)
        assert not_found(client)
        assert client.pool_stats()["open"] == 1
    finally:
        client.close()
        database.stop()
