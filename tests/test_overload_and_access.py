"""Overload and internal access (contract sections 6, 9 and 10), against real processes.

- Bursts of logins: password hashing is queued in the frontends, so 200 clients
  signing up and logging in at once all succeed and the customer database's
  memory stays small (it used to run 200 scrypt hashes at once: ~800 MB, and
  most clients got ``unavailable``).
- Internal access: with ``--secret-file`` the databases serve only connections
  that answered their challenge; a database bound beyond loopback without a
  secret refuses to start.
- A completed purchase leaves no pending reservation behind.
- The frontends' database pools work past 1,024 open descriptors (no ``select()``)
  and stay within ``--db-pool``, so a database never refuses its own frontends.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import os
import resource
import secrets
import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers.market import CARD, ROOT, start_market, wait_until
from helpers.wire import Wire

from market.net.client import Client
from market.ops.launch import ServiceProcess
from protocol import ApiError

MEMORY_LIMIT_MB = 150
DATABASES = ["product_db.py", "customer_db.py"]


# -- helpers ------------------------------------------------------------------

def peak_memory_mb(proc: ServiceProcess) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    return proc.peak_rss_kb() / 1024


def proof(secret: bytes, challenge_hex: str) -> str:
    return hmac.new(secret, bytes.fromhex(challenge_hex), hashlib.sha256).hexdigest()


def authenticated(address, secret: bytes) -> Wire:
    """A raw connection to a database that has answered its challenge."""
    conn = Wire(address)
    hello = conn.result("Hello")
    assert conn.result("Authenticate", {"proof": proof(secret, hello["challenge"])}) == {}
    return conn


def storm(targets: list[tuple[tuple[str, int], str]], ops: tuple[str, ...],
          timeout: float = 60.0) -> tuple[collections.Counter, float]:
    """One thread per (frontend address, username), started together by a barrier; each
    runs ``ops`` (CreateAccount and/or Login) in turn. Returns '<op> <code>' counts and
    the wall time from the barrier to the last reply."""
    outcomes: collections.Counter = collections.Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(len(targets) + 1)

    def client(address, username: str) -> None:
        api = Client(address, timeout=timeout)
        try:
            barrier.wait(timeout=30)
            for op in ops:
                try:
                    api.call(op, {"username": username, "password": "pw-" + username})
                    code = "ok"
                except ApiError as error:
                    code = error.code
                with lock:
                    outcomes[f"{op} {code}"] += 1
        finally:
            api.close()

    threads = [threading.Thread(target=client, args=target) for target in targets]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=30)
    start = time.monotonic()
    for thread in threads:
        thread.join(timeout + 30)
    return outcomes, time.monotonic() - start


@pytest.fixture
def secret_file(tmp_path):
    """A random deployment secret in a 0600 file: (path, the secret's bytes)."""
    secret = secrets.token_hex(32)
    path = tmp_path / "market.secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")  # surrounding whitespace is not part of the secret
    return path, secret.encode()


# -- bursts of logins (section 9) -------------------------------------------------

def test_two_hundred_signups_and_logins_at_once_all_succeed_in_bounded_memory(unique):
    """100 clients at each frontend, real hash cost: CreateAccount then Login, all at once."""
    market = start_market()
    try:
        targets = [(market.buyer_server.address, unique("storm_b")) for _ in range(100)]
        targets += [(market.seller_server.address, unique("storm_s")) for _ in range(100)]
        outcomes, wall = storm(targets, ("CreateAccount", "Login"))
        memory = {proc.script: round(peak_memory_mb(proc)) for proc in market.procs()}
        print(f"\nlogin storm: {wall:.1f} s, {dict(outcomes)}, peak MB {memory}")
        assert outcomes == {"CreateAccount ok": 200, "Login ok": 200}, (outcomes, wall)
        assert memory["customer_db.py"] < MEMORY_LIMIT_MB, memory
        # Hashing is bounded by the cores, not by the clients waiting.
        assert memory["seller_server.py"] < MEMORY_LIMIT_MB, memory
        assert memory["buyer_server.py"] < MEMORY_LIMIT_MB, memory
        assert wall < 50, f"the storm took {wall:.1f} s"
    finally:
        market.stop()


def test_two_hundred_logins_of_unknown_names_at_once_are_all_auth_failed(unique):
    market = start_market(buyer_args=("--hash-cost", "10"), seller_args=("--hash-cost", "10"))
    try:
        targets = [(market.buyer_server.address, unique("ghost_b")) for _ in range(100)]
        targets += [(market.seller_server.address, unique("ghost_s")) for _ in range(100)]
        outcomes, wall = storm(targets, ("Login",))
        memory = round(peak_memory_mb(market.customer_db))
        assert outcomes == {"Login auth_failed": 200}, (outcomes, wall)
        assert memory < MEMORY_LIMIT_MB, f"customer database peak {memory} MB"
    finally:
        market.stop()


# -- internal access (section 10) -------------------------------------------------

def test_databases_with_a_secret_serve_only_connections_that_prove_it(secret_file, unique):
    path, secret = secret_file
    market = start_market(secret_file=path)
    conns: list[Wire] = []

    def connect(address) -> Wire:
        conns.append(Wire(address))
        return conns[-1]

    try:
        # The frontends, holding the same secret, serve users end to end.
        seller, buyer = market.seller(), market.buyer()
        seller_id = seller.register(unique("acc_seller"))
        buyer_id = buyer.register(unique("acc_buyer"))
        item_id = seller("RegisterItemForSale", name="guarded lamp", category=42,
                         keywords=["guarded"], condition="new", price=10, quantity=5)["item_id"]
        found = buyer("SearchItemsForSale", category=42, keywords=["guarded"])["items"]
        assert [item["item_id"] for item in found] == [item_id]
        buyer("AddItemToCart", item_id=item_id, quantity=1)
        purchase = buyer("MakePurchase", **CARD)["purchase"]
        assert [line["item_id"] for line in purchase["lines"]] == [item_id]

        product, customer = market.product_db.address, market.customer_db.address
        # Without the proof, every op is forbidden and changes nothing.
        outsider_product = [
            ("ChangePrice", {"seller_id": seller_id, "item_id": item_id, "price": 100}),
            ("RemoveUnits", {"seller_id": seller_id, "item_id": item_id, "quantity": 4}),
            ("ReserveUnits", {"purchase_id": "f" * 32,
                              "lines": [{"item_id": item_id, "quantity": 4}]}),
            ("CountVote", {"item_id": item_id, "vote": "down", "key": "k"}),
            ("RegisterItem", {"seller_id": seller_id, "name": "fake", "category": 42,
                              "keywords": ["guarded"], "condition": "new", "price": 1,
                              "quantity": 1}),
            ("GetItem", {"item_id": item_id}),
            ("Search", {"category": 42, "keywords": [], "limit": 10}),
            ("HeldReservations", {"older_than": 0, "limit": 10}),
        ]
        outsider_customer = [
            ("CheckSession", {"role": "buyer"}, buyer.session),
            ("GetSellerRating", {"role": "seller", "seller_id": seller_id}, seller.session),
            ("GetPurchases", None, buyer.session),
            ("ResolvePurchases", {"purchase_ids": [purchase["purchase_id"]]}, None),
            ("CreateAccount", {"role": "buyer", "username": unique("intruder"),
                               "password": "pw"}, None),
            ("Logout", {"role": "buyer"}, buyer.session),
        ]
        conn = connect(product)
        codes = {op: conn.code(op, args) for op, args in outsider_product}
        assert codes == {op: "forbidden" for op, _ in outsider_product}, codes
        conn = connect(customer)
        codes = {op: conn.code(op, args, session) for op, args, session in outsider_customer}
        assert codes == {op: "forbidden" for op, _, _ in outsider_customer}, codes
        item = buyer("GetItem", item_id=item_id)["item"]
        assert (item["price"], item["quantity"], item["thumbs_down"]) == (10, 4, 0), item
        assert buyer("DisplayCart")["cart"]["lines"] == []  # the session survived the Logout
        assert seller("DisplayItemsForSale")["items"][0]["name"] == "guarded lamp"

        # Each frontend and database says what it is, without a secret.
        for address, kind in [(market.seller_server.address, "seller"),
                              (market.buyer_server.address, "buyer")]:
            hello = connect(address).result("Hello")
            assert hello["service"] == kind and isinstance(hello["version"], str), hello
        for address, kind in [(product, "product_db"), (customer, "customer_db")]:
            conn = connect(address)
            first, second = conn.result("Hello"), conn.result("Hello")
            other = connect(address).result("Hello")
            assert first["service"] == kind and isinstance(first["version"], str), first
            challenges = {first["challenge"], second["challenge"], other["challenge"]}
            assert len(challenges) == 3, "a challenge must be fresh for every Hello"
            assert all(len(bytes.fromhex(c)) >= 16 for c in challenges), challenges

        # A wrong proof, or the proof of another connection's challenge, is forbidden.
        for address in (product, customer):
            wrong = connect(address)
            challenge = wrong.result("Hello")["challenge"]
            assert wrong.code("Authenticate",
                              {"proof": proof(b"not-the-secret", challenge)}) == "forbidden"
            assert wrong.code("GetItem" if address == product else "CheckSession",
                              {"item_id": item_id} if address == product else {"role": "buyer"},
                              buyer.session) in ("forbidden", "closed")
            replayed, victim = connect(address), connect(address)
            replayed.result("Hello")
            stolen = proof(secret, victim.result("Hello")["challenge"])
            assert replayed.code("Authenticate", {"proof": stolen}) == "forbidden"

        # The right proof opens the connection: later ops are served.
        conns.append(authenticated(product, secret))
        assert conns[-1].result("GetItem", {"item_id": item_id})["item"]["price"] == 10
        assert conns[-1].code("GetItem", {"item_id": 10 ** 6}) == "not_found"
        conns.append(authenticated(customer, secret))
        assert conns[-1].result("CheckSession", {"role": "buyer"}, buyer.session) \
            == {"user_id": buyer_id}

        # protocol.Client does the handshake itself on each new connection.
        client = Client(product, timeout=5.0, secret=secret)
        try:
            assert client.call("GetItem", {"item_id": item_id})["item"]["quantity"] == 4
        finally:
            client.close()

        # The secret never crosses the wire.
        everything = b"".join(line for c in conns for line in c.replies)
        assert secret not in everything and secret.decode().upper().encode() not in everything
    finally:
        for conn in conns:
            conn.close()
        market.stop()


def test_databases_without_a_secret_on_loopback_stay_open():
    market = start_market()
    conns: list[Wire] = []
    try:
        conns += [Wire(market.product_db.address), Wire(market.customer_db.address)]
        product, customer = conns
        hello = product.result("Hello")
        assert hello["service"] == "product_db" and "challenge" not in hello, hello
        assert product.code("GetItem", {"item_id": 1}) == "not_found"
        hello = customer.result("Hello")
        assert hello["service"] == "customer_db" and "challenge" not in hello, hello
        assert customer.code("CheckSession", {"role": "buyer"}, "no-such-token") \
            == "invalid_session"
    finally:
        for conn in conns:
            conn.close()
        market.stop()


@pytest.mark.parametrize("script", DATABASES)
def test_a_database_beyond_loopback_needs_a_secret(script, secret_file):
    env = {k: v for k, v in os.environ.items() if k != "MARKET_SECRET_FILE"}
    proc = subprocess.Popen([sys.executable, str(ROOT / script), "--host", "0.0.0.0",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    try:
        first_line = proc.stdout.readline()  # a ready line, or '' once it has exited
        assert " ready on " not in first_line, f"{script} served 0.0.0.0 without a secret"
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode != 0
        assert "secret" in stderr.lower(), stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    path, secret = secret_file
    db = ServiceProcess(script, "--host", "0.0.0.0", "--secret-file", str(path))
    conn = None
    try:
        db.start()
        conn = Wire(("127.0.0.1", db.address[1]))
        assert conn.ask("Hello")["result"]["challenge"]
        assert conn.code("CheckSession" if "customer" in script else "GetItem",
                         {"role": "buyer"} if "customer" in script else {"item_id": 1},
                         "token") == "forbidden"
    finally:
        if conn:
            conn.close()
        db.stop()


# -- a completed purchase is settled at once (section 8: bounded bookkeeping) --------

def test_a_completed_purchase_leaves_no_pending_reservation(unique):
    market = start_market()
    product_db = Client(market.product_db.address)
    try:
        seller = market.seller()
        seller.register(unique("settle_seller"))
        item_id = seller("RegisterItemForSale", name="settled", category=7, keywords=[],
                         condition="new", price=2.5, quantity=10)["item_id"]
        bought = 0
        for round_ in range(3):
            buyer = market.buyer()
            buyer.register(unique("settle_buyer"))
            buyer("AddItemToCart", item_id=item_id, quantity=round_ + 1)
            buyer("MakePurchase", **CARD)
            bought += round_ + 1
            pending = product_db.call("HeldReservations", {"older_than": 0, "limit": 10})
            assert pending == {"purchase_ids": []}, f"after purchase {round_ + 1}: {pending}"
            # Marked sold, not given back.
            assert buyer("GetItem", item_id=item_id)["item"]["quantity"] == 10 - bought
    finally:
        product_db.close()
        market.stop()


# -- database pools (section 6) ------------------------------------------------------

def time_wait_sockets(port: int) -> int:
    """TCP sockets in TIME_WAIT (state 06) with ``port`` at either end."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            ends = {int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)}
            if fields[3] == "06" and port in ends:
                count += 1
    return count


def open_fds(proc: ServiceProcess) -> int:
    return len(os.listdir(f"/proc/{proc.proc.pid}/fd"))


def test_database_connections_are_reused_past_1024_descriptors(unique):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    market = start_market(buyer_args=("--max-connections", "1500"))
    idle: list[socket.socket] = []
    client = None
    try:
        seller = market.seller()
        seller.register(unique("fd_seller"))
        item_id = seller("RegisterItemForSale", name="fd", category=3, keywords=[],
                         condition="new", price=1, quantity=1)["item_id"]
        for _ in range(1100):
            idle.append(socket.create_connection(market.buyer_server.address, timeout=5))
        assert wait_until(lambda: open_fds(market.buyer_server) > 1100, timeout=10), \
            f"the buyer frontend holds only {open_fds(market.buyer_server)} descriptors"

        # A raw client (its own descriptor is not the point here); every database
        # connection the frontend opens from now on is past descriptor 1,024.
        client = Wire(market.buyer_server.address, timeout=10)
        name = unique("fd_buyer")
        assert client.code("CreateAccount", {"username": name, "password": "pw"}) == "ok"
        session = client.result("Login", {"username": name, "password": "pw"})["session"]
        ports = {"product db": market.product_db.address[1],
                 "customer db": market.customer_db.address[1]}
        before = {what: time_wait_sockets(port) for what, port in ports.items()}
        codes = collections.Counter(client.code("GetItem", {"item_id": item_id}, session)
                                    for _ in range(300))
        assert codes == {"ok": 300}, codes
        assert open_fds(market.buyer_server) > 1100
        churn = {what: time_wait_sockets(port) - before[what] for what, port in ports.items()}
        assert churn["product db"] < 30, f"connections closed after use (TIME_WAIT): {churn}"
        assert churn["customer db"] < 30, f"connections closed after use (TIME_WAIT): {churn}"
    finally:
        if client:
            client.close()
        for sock in idle:
            sock.close()
        market.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_database_never_refuses_its_own_frontends(unique):
    """Each frontend keeps at most --db-pool connections to each database: 2 x 25 < 60."""
    market = start_market(product_args=("--max-connections", "60"),
                          customer_args=("--max-connections", "60"),
                          seller_args=("--db-pool", "25"), buyer_args=("--db-pool", "25"))
    try:
        seller, buyer = market.seller(), market.buyer()
        seller.register(unique("pool_seller"))
        buyer.register(unique("pool_buyer"))
        item_ids = [seller("RegisterItemForSale", name=f"pool{n}", category=9,
                           keywords=["pool", f"k{n}"], condition="used", price=n + 1,
                           quantity=3)["item_id"] for n in range(10)]

        def seller_op(api: Client, n: int) -> None:
            api.call("DisplayItemsForSale", {}, seller.session)

        def buyer_op(api: Client, n: int) -> None:
            if n % 2:
                api.call("GetItem", {"item_id": item_ids[n % len(item_ids)]}, buyer.session)
            else:
                api.call("SearchItemsForSale", {"category": 9, "keywords": ["pool"],
                                                "limit": 5}, buyer.session)

        outcomes: collections.Counter = collections.Counter()
        messages: dict[str, str] = {}  # one message per error code, to say why
        lock = threading.Lock()
        workers = [(market.seller_server.address, seller_op)] * 55
        workers += [(market.buyer_server.address, buyer_op)] * 55
        barrier = threading.Barrier(len(workers))

        def work(address, op) -> None:
            api = Client(address, timeout=10)
            mine: collections.Counter = collections.Counter()
            try:
                barrier.wait(timeout=30)
                stop = time.monotonic() + 3
                n = 0
                while time.monotonic() < stop:
                    try:
                        op(api, n)
                        mine["ok"] += 1
                    except ApiError as error:
                        mine[error.code] += 1
                        messages.setdefault(error.code, error.message)
                    n += 1
            finally:
                api.close()
                with lock:
                    outcomes.update(mine)

        threads = [threading.Thread(target=work, args=worker) for worker in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert outcomes["ok"] > 1000, f"too little load to mean anything: {outcomes}"
        assert set(outcomes) == {"ok"}, (outcomes, messages)
    finally:
        market.stop()
