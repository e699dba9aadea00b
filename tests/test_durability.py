"""--data-dir: acknowledged writes survive kill -9; damage is reported clearly."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from helpers.market import CARD, ROOT, Api, every_page, keyed

from market.frontend.passwords import scrypt
from market.net.client import Client
from market.ops.launch import ServiceProcess
from protocol import ApiError


def test_state_survives_kill_9_of_both_databases(durable_market):
    market = durable_market
    seller, buyer = market.seller(), market.buyer()
    seller.register("sally")
    item_id = seller("RegisterItemForSale", name="lamp", category=1, keywords=["desk"],
                     condition="new", price=12.25, quantity=10)["item_id"]
    seller("ChangeItemPrice", item_id=item_id, price=13.5)
    buyer.register("bob")
    buyer("AddItemToCart", item_id=item_id, quantity=2)
    buyer("MakePurchase", **CARD)
    buyer("ProvideFeedback", item_id=item_id, vote="up")
    buyer("AddItemToCart", item_id=item_id, quantity=3)
    buyer("SaveCart")
    before = (seller("DisplayItemsForSale"), seller("GetSellerRating"),
              buyer("GetBuyerPurchases"), buyer("DisplayCart"))

    for db in (market.product_db, market.customer_db):
        db.kill()
        db.restart()

    after = (seller("DisplayItemsForSale"), seller("GetSellerRating"),
             buyer("GetBuyerPurchases"), buyer("DisplayCart"))
    assert after == before  # sessions survive too: no new login was needed
    fresh = market.buyer()
    fresh.login("bob")
    assert fresh("DisplayCart") == before[3]
    assert seller("RegisterItemForSale", name="new", category=1, keywords=[],
                  condition="used", price=1, quantity=1)["item_id"] == item_id + 1


def test_acknowledged_writes_survive_kill_during_write_load(durable_market):
    market = durable_market
    """Writers register items as fast as they can; kill -9 the product db mid-load."""
    seller = market.seller()
    seller.register("loader")
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer() -> None:
        api = Api(Client(market.seller_server.address, timeout=2))
        api.session = seller.session
        while not stop.is_set():
            try:
                item_id = api("RegisterItemForSale", name="w", category=2, keywords=[],
                              condition="new", price=1, quantity=1)["item_id"]
            except ApiError:
                return
            with lock:
                acknowledged.append(item_id)
        api.client.close()

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    market.product_db.kill()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) >= 300
    market.product_db.restart()

    stored = {item["item_id"] for item in every_page(seller, "DisplayItemsForSale", "items")}
    assert set(acknowledged) <= stored
    # Nothing half-applied: ids are dense and every stored item is whole.
    assert stored == set(range(1, max(stored) + 1))


def test_snapshot_and_journal_replay_agree(tmp_path):
    """Many writes across several snapshots come back exactly."""
    sys.path.insert(0, str(ROOT))
    import product_db
    from market.net.service import Request

    db = product_db.ProductDB()
    db.open_data_dir(str(tmp_path))
    db.storage.journal.snapshot_every = 50
    request = Request("x", None)
    for n in range(1, 181):
        db.dispatch({"op": "RegisterItem", "args": {
            "seller_id": 1 + n % 3, "name": f"i{n}", "category": n % 4, "keywords": ["k"],
            "condition": "new", "price": n, "quantity": 5, **keyed()}})
        db.dispatch({"op": "ReserveUnits", "args": {"purchase_id": f"p{n}",
                                                    "lines": [{"item_id": n, "quantity": 2}]}})
        if n % 2:
            db.dispatch({"op": "SettleReservations",
                         "args": {"committed": [], "cancelled": [f"p{n}"]}})
        elif n % 4 == 0:
            db.dispatch({"op": "SettleReservations",
                         "args": {"committed": [f"p{n}"], "cancelled": []}})
    assert db.storage.journal.generation >= 3
    again = product_db.ProductDB()
    again.open_data_dir(str(tmp_path))
    assert again.data.dump() == db.data.dump()
    assert again.search(request, 1, ["K"], 500) == db.search(request, 1, ["K"], 500)


def start_with(data_dir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "customer_db.py"), "--port", "0",
                           "--data-dir", str(data_dir)], capture_output=True, text=True,
                          timeout=10)


def new_account(username: str, password: str, role: str = "buyer") -> dict:
    """CreateAccount args as a frontend sends them: the password hashed (scrypt, cost 10)."""
    salt = os.urandom(16)
    return {"role": role, "username": username, "salt": salt.hex(),
            "hash": scrypt(password, salt, 10).hex(), "cost": 10, **keyed()}


def login_args(client: Client, username: str, password: str, role: str = "buyer") -> dict:
    """Login args as a frontend sends them: the password hashed with the account's salt."""
    salt = client.call("GetSalt", {"role": role, "username": username})
    return {"role": role, "username": username,
            "hash": scrypt(password, bytes.fromhex(salt["salt"]), salt["cost"]).hex()}


def test_torn_last_line_is_ignored_and_corruption_is_named(tmp_path):
    db = ServiceProcess("customer_db.py", "--data-dir", str(tmp_path)).start()
    api = Api(Client(db.address))
    api.client.call("CreateAccount", new_account("a", "p"))
    api.client.call("CreateAccount", new_account("b", "p"))
    api.client.close()
    db.kill()
    journal = tmp_path / "journal-0.jsonl"
    good = journal.read_bytes()
    assert good.count(b"\n") == 2

    journal.write_bytes(good + b'{"kind": "acc')  # a crash in the middle of a write
    db.restart()
    client = Client(db.address)
    assert client.call("Login", login_args(client, "b", "p"))
    client.close()
    db.kill()
    healed = journal.read_bytes()
    assert healed.startswith(good) and b'{"kind": "acc' not in healed  # torn tail cut off
    assert healed.count(b"\n") == 3  # ... and the login appended after it

    lines = good.split(b"\n")
    journal.write_bytes(lines[0] + b"\nnot json\n" + lines[1] + b"\n")
    result = start_with(tmp_path)
    assert result.returncode != 0
    assert f"{journal}:2: corrupt record" in result.stderr
    assert "Traceback" not in result.stderr

    journal.write_bytes(lines[0] + b'\n{"kind": "login", "token": "x"}\n')  # JSON, not a change
    result = start_with(tmp_path)
    assert result.returncode != 0
    assert f"{journal}:2: cannot apply this record (KeyError" in result.stderr
    assert "Traceback" not in result.stderr

    (tmp_path / "snapshot.json").write_text("{broken")
    result = start_with(tmp_path)
    assert result.returncode != 0 and "snapshot.json: corrupt snapshot" in result.stderr


def test_data_dir_files_are_private(tmp_path):
    db = ServiceProcess("customer_db.py", "--data-dir", str(tmp_path / "d")).start()
    product = ServiceProcess("product_db.py").start()  # a frontend serves only a whole market
    # The password takes its real path: through a frontend, which hashes it.
    frontend = ServiceProcess("seller_server.py", "--customer-db", db.where,
                              "--product-db", product.where, "--hash-cost", "10").start()
    seller = Api(Client(frontend.address))
    try:
        seller.register("s", "secret-pw")
    finally:
        seller.client.close()
        frontend.stop()
        product.stop()
    db.stop()
    journal = (tmp_path / "d" / "journal-0.jsonl")
    assert b'"kind":"account"' in journal.read_bytes()  # the account is in it ...
    assert b"secret-pw" not in journal.read_bytes()  # ... but not its password
    assert os.stat(tmp_path / "d").st_mode & 0o077 == 0
    assert os.stat(journal).st_mode & 0o077 == 0
