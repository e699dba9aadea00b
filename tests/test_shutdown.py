"""Clean stops: SIGTERM lets requests in flight finish; a taken port is one clear line."""
from __future__ import annotations

import subprocess
import sys
import threading

from helpers.market import CARD, ROOT, start_market, wait_until

from market.net.client import Client
from protocol import ApiError


def test_sigterm_finishes_the_request_in_flight():
    market = start_market(buyer_args=("--test-commit-delay", "1"))
    try:
        seller, buyer = market.seller(), market.buyer()
        seller.register("tess")
        item_id = seller("RegisterItemForSale", name="mug", category=1, keywords=[],
                         condition="new", price=3, quantity=4)["item_id"]
        buyer.register("tom")
        buyer("AddItemToCart", item_id=item_id, quantity=1)
        product = Client(market.product_db.address)
        outcome = {}

        def purchase() -> None:
            try:
                outcome["purchase"] = buyer("MakePurchase", **CARD)["purchase"]
            except ApiError as error:
                outcome["error"] = error.code

        thread = threading.Thread(target=purchase)
        thread.start()
        assert wait_until(lambda: product.call("GetItem", {"item_id": item_id})
                          ["item"]["quantity"] == 3, timeout=5, interval=0.02)
        market.buyer_server.proc.terminate()  # during the 1 s pause inside MakePurchase
        thread.join(10)
        assert outcome.get("purchase", {}).get("total") == 3, outcome
        assert market.buyer_server.proc.wait(10) == 0
        product.close()
    finally:
        market.stop()


def test_a_taken_port_is_one_clear_line():
    market = start_market()
    try:
        port = market.product_db.address[1]
        result = subprocess.run([sys.executable, str(ROOT / "product_db.py"), "--port",
                                 str(port)], capture_output=True, text=True, timeout=10)
        assert result.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        market.stop()
