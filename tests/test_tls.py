"""Encryption in transit (contract §14), over real processes: the walkthrough with TLS on,
seen by recording proxies on both hops; each wrong-certificate case in one sentence at both
ends while the service goes on serving; a half-open handshake; a rotated certificate; the
scripts with TLS=1."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers.cli import ok
from helpers.market import CARD, ROOT, unique_name, wait_until
from helpers.proxy import Recorder
from helpers.scripts import run_env, script
from helpers.tls import (
    handshake_error,
    logged_frontend,
    make_certs,
    peer_serial,
    signed_cert,
    start_tls_market,
    tls_api,
    tls_flags,
)

from market.net.tls import PLAINTEXT_REPLY, client_context
from market.ops.launch import ServiceProcess


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("tls") / "certs")


@pytest.fixture(scope="module")
def tls_market(certs, tmp_path_factory):
    market = start_tls_market(certs, log_dir=tmp_path_factory.mktemp("logs"))
    yield market
    market.stop()


def log_of(proc: ServiceProcess) -> str:
    return proc.log.read_text() if proc.log else ""


def tls_cli(script_name: str, port: int, ca, *lines: str, host: str = "127.0.0.1"):
    """A CLI with ``lines`` piped in, at ``host``:``port``, over TLS verifying with ``ca``
    (MARKET_TLS_CA; None: plaintext); the finished process."""
    env = {**os.environ, "MARKET_TLS_CA": str(ca or ""), "SELLER_SERVERS": "",
           "BUYER_SERVERS": ""}
    return subprocess.run([sys.executable, str(ROOT / script_name), "--host", host,
                           "--port", str(port)], input="".join(line + "\n" for line in lines),
                          text=True, capture_output=True, timeout=60, env=env)


def still_serves(market) -> None:
    """The market answers a client over TLS, as before."""
    assert tls_api(market, market.seller_server.address)("Hello")["service"] == "seller"
    assert tls_api(market, market.buyer_server.address)("Hello")["service"] == "buyer"


def warned(proc: ServiceProcess, *words: str) -> str:
    """The WARNING line of ``proc``'s log holding every word (waited for, 5 s)."""
    def line() -> str:
        return next((text for text in log_of(proc).splitlines()
                     if " WARNING " in text and all(word in text for word in words)), "")
    assert wait_until(lambda: bool(line()), timeout=5), (words, log_of(proc)[-2000:])
    return line()


def test_the_walkthrough_over_tls_leaves_no_secret_on_either_hop(tls_market, certs, tmp_path):
    """Seller and buyer CLIs through pipes, over TLS; recording proxies on the CLI ->
    frontend hop and on both frontend -> database hops see TLS only: no password, card
    number or session token, while every operation succeeds."""
    market = tls_market
    to_customer, to_product = Recorder(market.customer_db.address), Recorder(
        market.product_db.address)
    buyer_server = logged_frontend(market, tmp_path / "frontend.log",
                                   "buyer_server.py", *tls_flags(certs, "buyer_server"),
                                           "--product-db", to_product.addr,
                                           "--customer-db", to_customer.addr)
    to_buyer = Recorder(buyer_server.address)
    ca = certs / "ca.crt"
    alice, bob, word = unique_name("alice"), unique_name("bob"), unique_name("k")[:8]
    password = "Pa55-" + unique_name("word")
    try:
        out = ok(tls_cli("seller_client.py", market.seller_server.address[1], ca,
                         f"signup {alice} pw", f"register lamp 3 new 17.50 5 {word}", "list"))
        lamp = int(next(line for line in out.splitlines()
                        if line.startswith("Listed as item")).split()[-1].rstrip("."))
        out = ok(tls_cli("buyer_client.py", to_buyer.address[1], ca,
                         f"signup {bob} {password}", f"search 3 {word}", f"add {lamp} 2",
                         f'buy "Bob Buyer" "{CARD["card_number"]}" {CARD["expiry"]}',
                         "purchases"))
        assert "lamp" in out and "paid with the card ending 1111" in out
        buyer = tls_api(market, to_buyer.address)
        token = buyer.login(bob, password)["session"]
        assert buyer("GetBuyerPurchases")["purchases"]
        seen = {"CLI -> buyer frontend": to_buyer.seen(),
                "buyer frontend -> customer database": to_customer.seen(),
                "buyer frontend -> product database": to_product.seen()}
        for hop, data in seen.items():
            assert data[:1] == b"\x16", f"{hop}: not TLS"  # a TLS handshake record first
            for secret in (password, CARD["card_number"], token, '"op"'):
                assert secret.encode() not in data, f"{secret!r} in the clear on {hop}"
        # The proxy is not blind: plaintext through it is seen as it is.
        plain = socket.create_connection(to_buyer.address, timeout=5)
        plain.sendall(b'{"op":"Hello"}\n')
        assert plain.makefile("rb").readline() == PLAINTEXT_REPLY
        plain.close()
        assert b'{"op":"Hello"}' in to_buyer.seen()
    finally:
        for recorder in (to_buyer, to_customer, to_product):
            recorder.close()


def test_a_plaintext_cli_at_a_tls_port_is_told_to_give_the_ca(tls_market):
    result = tls_cli("buyer_client.py", tls_market.buyer_server.address[1], None, "search 1")
    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        f"127.0.0.1:{tls_market.buyer_server.address[1]} speaks TLS only: give this CLI the "
        "marketplace's CA with --tls-ca FILE (or MARKET_TLS_CA); nothing was sent.")
    assert "speaks plaintext to this TLS port" in warned(tls_market.buyer_server, "plaintext")
    still_serves(tls_market)


def test_a_tls_cli_and_frontend_at_plaintext_ports_are_told_so(tls_market, certs, tmp_path):
    """A TLS client at a plaintext port: the CLI, and a TLS frontend whose database is
    plaintext; each says the server answered in plaintext, the server says a TLS client
    came."""
    plain_db = ServiceProcess("product_db.py", log=tmp_path / "plain.log").start()
    try:
        result = tls_cli("seller_client.py", plain_db.address[1], certs / "ca.crt", "list")
        assert result.returncode == 2, result
        assert result.stderr.strip() == (
            f"Cannot talk to the seller frontend at 127.0.0.1:{plain_db.address[1]} securely: "
            "it does not speak TLS (it answered in plaintext): start it with --tls-cert, "
            "--tls-key and --tls-ca, or leave out --tls-ca here; nothing was sent.")
        assert "TLS handshake at this plaintext port" in warned(plain_db, "plaintext port")
        frontend = logged_frontend(tls_market, tmp_path / "frontend.log",
                               "seller_server.py",
                                               *tls_flags(certs, "seller_server"),
                                               "--product-db", plain_db.where)
        api = tls_api(tls_market, frontend.address)
        assert api("Hello")["service"] == "seller"
        assert api.error("CreateAccount", username=unique_name("s"), password="pw") \
            == "unavailable"
        line = warned(frontend, "product database")
        assert "it does not speak TLS (it answered in plaintext)" in line, line
        assert "--tls-cert" in line
        # The plaintext database serves plaintext clients as before.
        assert plain_db.stats_cpu_s() is not None
    finally:
        plain_db.stop()
    still_serves(tls_market)


def test_a_certificate_of_another_ca_is_refused_at_both_ends(tls_market, certs, tmp_path):
    """The CLI trusting another CA; a frontend showing the databases a certificate of
    another CA: each side names the cause and the flag."""
    other = make_certs(tmp_path / "other")
    result = tls_cli("seller_client.py", tls_market.seller_server.address[1],
                     other / "ca.crt", "list")
    assert result.returncode == 2, result
    assert (f"its TLS certificate is not signed by the CA in {other / 'ca.crt'} (--tls-ca or "
            "MARKET_TLS_CA must name the CA that signed it); nothing was sent.") \
        in result.stderr
    assert "does not trust our TLS certificate: its --tls-ca is not the CA that signed our " \
           "--tls-cert" in warned(tls_market.seller_server, "does not trust")

    frontend = logged_frontend(tls_market, tmp_path / "frontend.log",
                               
        "buyer_server.py", "--tls-cert", str(other / "buyer_server.crt"),
        "--tls-key", str(other / "buyer_server.key"), "--tls-ca", str(certs / "ca.crt"))
    assert tls_api(tls_market, frontend.address).error(
        "Login", username="nobody", password="pw") == "unavailable"
    line = warned(frontend, "customer database", "refused our TLS certificate")
    assert "it is not signed by the CA it trusts (its --tls-ca)" in line, line
    assert "its TLS certificate is not signed by the CA in" in warned(
        tls_market.customer_db, "not signed")
    still_serves(tls_market)


def test_a_wrong_host_name_is_refused(tls_market, certs, tmp_path):
    """A frontend dialled by a name its certificate does not list (127.0.0.2, of the
    loopback network; the certificate lists 127.0.0.1)."""
    frontend = logged_frontend(tls_market, tmp_path / "frontend.log",
                               "seller_server.py", *tls_flags(certs, "seller_server"),
                                           "--host", "0.0.0.0")
    result = tls_cli("seller_client.py", frontend.address[1], certs / "ca.crt", "list",
                     host="127.0.0.2")
    assert result.returncode == 2, result
    assert ("its TLS certificate is not valid for 127.0.0.2, the name dialled: dial a name it "
            "lists, or remake it with ./make_certs.sh 127.0.0.2; nothing was sent.") \
        in result.stderr
    assert "refused our TLS certificate (not valid for the name it dialled?" in warned(
        frontend, "not valid for the name")
    assert tls_cli("seller_client.py", frontend.address[1], certs / "ca.crt", "list",
                   host="localhost").returncode == 1  # reached: 'list' needs a login
    still_serves(tls_market)


def test_an_expired_certificate_is_refused_at_both_ends(tls_market, certs, tmp_path):
    """A frontend with an expired certificate: the CLI refuses it, the databases refuse it
    as a client certificate; each says it has expired."""
    cert, key = signed_cert(tmp_path, "seller_server", certs, days="-1")
    frontend = logged_frontend(tls_market, tmp_path / "frontend.log",
                               "seller_server.py",
                                           *tls_flags(certs, "seller_server", cert, key))
    result = tls_cli("seller_client.py", frontend.address[1], certs / "ca.crt", "list")
    assert result.returncode == 2, result
    assert re.search(r"securely: its TLS certificate has expired: make it a new one "
                     r"\(\./make_certs\.sh\) and send it SIGHUP to load it; nothing was sent\.",
                     result.stderr), result.stderr
    # The frontend could not even start its copies: the databases refuse its certificate.
    line = warned(frontend, "refused our TLS certificate", "it has expired")
    assert "send this process SIGHUP" in line
    assert "its TLS certificate has expired" in warned(tls_market.product_db, "expired")
    still_serves(tls_market)


def test_a_half_open_handshake_holds_up_no_one_and_is_closed_after_the_read_timeout(
        tls_market, certs, tmp_path):
    frontend = logged_frontend(tls_market, tmp_path / "frontend.log",
                               "buyer_server.py", *tls_flags(certs, "buyer_server"),
                                           "--read-timeout", "1.5")
    silent = [socket.create_connection(frontend.address, timeout=10) for _ in range(20)]
    try:
        started = time.monotonic()
        api = tls_api(tls_market, frontend.address)
        assert api("Hello")["service"] == "buyer"
        assert time.monotonic() - started < 1.0
        # They count against the cap while they wait (the Stats connection is one more).
        assert api("Stats")["connections"]["open"] >= len(silent) + 1
        for sock in silent:  # closed by the server once the read timeout is up
            assert sock.recv(1) == b""
        assert time.monotonic() - started < 5
        assert api("Hello")["service"] == "buyer"  # its own connection was not touched
    finally:
        for sock in silent:
            sock.close()


def test_sighup_reloads_the_certificate_for_new_connections(tls_market, certs, tmp_path):
    """A frontend's certificate remade (same CA) is shown to new connections after SIGHUP,
    while an open connection goes on; a file that fails to load keeps the old ones."""
    own = tmp_path / "certs"
    own.mkdir()
    for name in ("ca.crt", "ca.key"):
        (own / name).write_bytes((certs / name).read_bytes())
    make_certs(own)
    frontend = logged_frontend(tls_market, tmp_path / "frontend.log",
                               "seller_server.py", *tls_flags(own, "seller_server"))
    before = peer_serial(frontend.address, own / "ca.crt")
    api = tls_api(tls_market, frontend.address)
    assert api("Hello")["service"] == "seller"
    make_certs(own)  # new certificates, same CA
    os.kill(frontend.proc.pid, signal.SIGHUP)
    assert wait_until(lambda: peer_serial(frontend.address, own / "ca.crt") != before,
                      timeout=5)
    assert "TLS files reloaded" in log_of(frontend)
    assert api("Hello")["service"] == "seller"  # the open connection goes on
    after = peer_serial(frontend.address, own / "ca.crt")

    (own / "seller_server.key").write_text("not a key\n")
    os.kill(frontend.proc.pid, signal.SIGHUP)
    line = warned(frontend, "TLS files not reloaded")
    assert "the ones loaded before stay in use" in line and "seller_server.crt" in line
    assert peer_serial(frontend.address, own / "ca.crt") == after
    assert tls_api(tls_market, frontend.address)("Hello")["service"] == "seller"


def test_a_service_with_part_of_the_tls_flags_does_not_start(certs, tmp_path):
    with pytest.raises(RuntimeError):
        ServiceProcess("customer_db.py", "--tls-cert", str(certs / "customer_db.crt"),
                       log=tmp_path / "db.log").start()
    assert ("TLS needs all of --tls-cert, --tls-key, --tls-ca; --tls-key and --tls-ca are "
            "missing") in (tmp_path / "db.log").read_text()


def test_run_all_with_tls_status_and_stop(tmp_path):
    """TLS=1 ./run_all.sh makes the certificates, starts everything with TLS and prints
    the line to export; status.sh sees every service up over TLS; a CLI with the CA works
    and one without is told; stop_all.sh stops them all."""
    env = {**run_env(tmp_path), "TLS": "1"}
    run = tmp_path / "run"
    try:
        started = script("run_all.sh", env)
        assert started.returncode == 0, started.stderr
        ca = run / "tls" / "ca.crt"
        assert f"export MARKET_TLS_CA={ca}" in started.stdout.splitlines()
        for name in ("ca", "product_db", "customer_db", "seller_server", "buyer_server"):
            assert (run / "tls" / f"{name}.key").stat().st_mode & 0o777 == 0o600
        # degraded (1) until the frontends' copies are in use, a moment after they are ready
        assert wait_until(lambda: script("status.sh", env).returncode == 0, timeout=10)
        status = script("status.sh", env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert [line.split()[3] for line in status.stdout.splitlines()[1:5]] == ["up"] * 4
        port = int(env["BUYER_SERVER_PORT"])
        assert ok(tls_cli("buyer_client.py", port, ca, f"signup {unique_name('b')} pw")) \
            .startswith("Created buyer account")
        assert tls_cli("buyer_client.py", port, None, "search 1").returncode == 2
        assert handshake_error(("127.0.0.1", int(env["PRODUCT_DB_PORT"])),
                               client_context(str(ca))).startswith(
            "it asks for a TLS client certificate")
    finally:
        stopped = script("stop_all.sh", env)
    assert stopped.returncode == 0 and stopped.stdout.count("stopped ") == 4, stopped.stdout
    assert not list(run.glob("*.tls")) and not list(run.glob("*.pid"))
