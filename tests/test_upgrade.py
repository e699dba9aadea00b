"""Data written by older versions (tests/fixtures, see its README) upgraded by this one.

Each fixture is a market's two data directories as an old version left them,
with ``expected.json``: what that version's frontends showed at the end.
This version's services start on a copy and must show the same, over the wire,
once the buyer frontend's settler has settled the reservations left held.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal

import pytest
from helpers.market import ROOT, Market, every_page, settling_rounds, wait_until

from market.ops.launch import ServiceProcess
from market.storage import formats

FIXTURES = ROOT / "tests" / "fixtures"
SETTLE_AFTER = 1  # seconds the settler leaves a reservation held before asking for the verdict


def plain(value):
    """Replies' Decimals as floats (the fixture's JSON has floats)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def files(directory) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes)."""
    return {str(path.relative_to(directory)): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


@pytest.fixture(params=["format-1", "format-2", "format-3"])
def upgraded(request, tmp_path):
    """This version's four services on a copy of an old version's market."""
    shutil.copytree(FIXTURES / request.param, tmp_path / "market")
    data = tmp_path / "market"
    for name in ("product", "customer"):
        os.chmod(data / name, 0o700)
    product_db = ServiceProcess("product_db.py", "--data-dir", str(data / "product"),
                                log=tmp_path / "product.log").start()
    customer_db = ServiceProcess("customer_db.py", "--data-dir", str(data / "customer"),
                                 log=tmp_path / "customer.log").start()
    dbs = ["--product-db", product_db.where, "--customer-db", customer_db.where]
    market = Market(product_db, customer_db,
                    ServiceProcess("seller_server.py", *dbs).start(),
                    ServiceProcess("buyer_server.py", *dbs, "--settle-after",
                                   str(SETTLE_AFTER)).start())
    market.data = data
    market.logs = tmp_path
    market.expected = json.loads((data / "expected.json").read_text())
    market.fixture = FIXTURES / request.param
    yield market
    market.stop()


def test_every_account_item_rating_purchase_and_saved_cart_is_as_before(upgraded):
    expected = upgraded.expected
    held = expected["held"]
    anyone = upgraded.buyer()
    anyone.login("bob", expected["buyers"]["bob"]["password"])

    def settled() -> bool:
        item = anyone("GetItem", item_id=held["item_id"])["item"]
        return item["quantity"] == held_quantity + held["units"]

    items_before = {item["item_id"]: item for seller in expected["sellers"].values()
                    for item in seller["items"]}
    held_quantity = items_before[held["item_id"]]["quantity"]
    # The held purchase was never committed: the settler gives its units back ...
    assert wait_until(settled, timeout=10 * SETTLE_AFTER)
    # ... and only those: every committed purchase's units stay sold.
    settling_rounds(upgraded, 3)  # a few more rounds of the settler
    items_before[held["item_id"]]["quantity"] += held["units"]

    for name, seller in expected["sellers"].items():
        api = upgraded.seller()
        assert api.login(name, seller["password"])["seller_id"] == seller["seller_id"]
        assert plain(every_page(api, "DisplayItemsForSale", "items")) == [
            items_before[item["item_id"]] for item in seller["items"]]
        rating = plain(api("GetSellerRating"))
        assert {key: rating[key] for key in seller["rating"]} == seller["rating"]
    for name, buyer in expected["buyers"].items():
        api = upgraded.buyer()
        assert api.login(name, buyer["password"])["buyer_id"] == buyer["buyer_id"]
        assert plain(every_page(api, "GetBuyerPurchases", "purchases")) == buyer["purchases"]
        assert api("GetBuyerPurchases")["items_purchased"] == buyer["items_purchased"]
        assert plain(api("DisplayCart")["cart"]) == buyer["saved_cart"]
    for item_id, item in items_before.items():
        assert plain(anyone("GetItem", item_id=item_id)["item"]) == item


def test_the_old_files_are_kept_as_they_were_and_never_appended_to(upgraded):
    expected, data = upgraded.expected, upgraded.data
    seller = upgraded.seller()
    seller.login("sally", expected["sellers"]["sally"]["password"])
    seller("RegisterItemForSale", name="new", category=1, keywords=[], condition="new",
           price=1, quantity=1)
    buyer = upgraded.buyer()
    buyer.login("bea", expected["buyers"]["bea"]["password"])
    buyer("SaveCart")
    old = f"backup-format-{expected['format']}"
    for name in ("product", "customer"):
        assert files(data / name / old) == files(upgraded.fixture / name)
        marker = json.loads((data / name / "FORMAT").read_text())
        assert marker == {"format": formats.CURRENT, "database": f"{name}_db"}
        log = (upgraded.logs / f"{name}.log").read_text()
        assert (f"upgraded {data / name} from data format {expected['format']} "
                f"to {formats.CURRENT}") in log


def test_a_newer_format_is_refused_and_nothing_is_changed(tmp_path):
    data = tmp_path / "customer"
    shutil.copytree(FIXTURES / "format-2" / "customer", data)
    (data / "FORMAT").write_text('{"format": 99, "database": "customer_db"}\n')
    before = files(data)
    result = subprocess.run([sys.executable, str(ROOT / "customer_db.py"), "--port", "0",
                             "--data-dir", str(data)], capture_output=True, text=True,
                            timeout=20)
    assert result.returncode != 0
    assert "data format 99" in result.stderr and f"writes {formats.CURRENT}" in result.stderr
    assert "Traceback" not in result.stderr
    assert files(data) == before and sorted(os.listdir(data)) == sorted(before)
