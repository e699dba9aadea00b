"""market/net/tls.py in process: the sentences for each failure, the pace of the server's
WARNINGs, a TLS stream over a socket pair with kernel timeouts, a server's first-byte
checks, reloading, the flags, and a ``Server`` and ``Client`` over TLS in one process."""
from __future__ import annotations

import logging
import shutil
import socket
import ssl
import threading
import time
from types import SimpleNamespace

import pytest
from helpers.tls import make_certs

import performance
from market.errors import TlsError
from market.net import tls
from market.net.client import Client
from market.net.flags import load_tls, service_parser
from market.net.server import Server
from market.net.service import Service
from market.net.sockets import LineReader, set_socket_timeout


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("tls") / "certs")


def verify_error(code: int, message: str = "") -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_code, error.verify_message = code, message
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    return error


def ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, reason.lower())
    error.reason = reason
    return error


CLIENT_CONTEXT = SimpleNamespace(ca_file="/etc/market/ca.crt", cert_file="/etc/market/fe.crt")


@pytest.mark.parametrize("error, sentence", [
    (verify_error(10), "its TLS certificate has expired: make it a new one (./make_certs.sh) "
                       "and send it SIGHUP to load it"),
    (verify_error(9), "its TLS certificate is not valid yet (is one of the clocks wrong?)"),
    (verify_error(62), "its TLS certificate is not valid for db1.example, the name dialled: "
                       "dial a name it lists, or remake it with ./make_certs.sh db1.example"),
    (verify_error(20), "its TLS certificate is not signed by the CA in /etc/market/ca.crt "
                       "(--tls-ca or MARKET_TLS_CA must name the CA that signed it)"),
    (verify_error(19), "its TLS certificate is not signed by the CA in /etc/market/ca.crt "
                       "(--tls-ca or MARKET_TLS_CA must name the CA that signed it)"),
    (ssl_error("WRONG_VERSION_NUMBER"),
     "it does not speak TLS (it answered in plaintext): start it with --tls-cert, --tls-key "
     "and --tls-ca, or leave out --tls-ca here"),
    (ssl_error("TLSV1_ALERT_UNKNOWN_CA"),
     "it refused our TLS certificate /etc/market/fe.crt (--tls-cert): it is not signed by the "
     "CA it trusts (its --tls-ca)"),
    (ssl_error("SSLV3_ALERT_CERTIFICATE_EXPIRED"),
     "it refused our TLS certificate /etc/market/fe.crt (--tls-cert): it has expired; make a "
     "new one (./make_certs.sh) and send this process SIGHUP"),
])
def test_a_client_says_what_is_wrong_in_one_sentence_naming_the_flag(error, sentence):
    assert tls.explain_at_client(error, CLIENT_CONTEXT, "db1.example") == sentence


def test_a_client_without_a_certificate_is_told_to_give_one():
    context = SimpleNamespace(ca_file="/ca.crt", cert_file="")
    assert tls.explain_at_client(ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"), context, "h") \
        == "it asks for a TLS client certificate: give ours with --tls-cert and --tls-key"


@pytest.mark.parametrize("error, sentence", [
    (verify_error(10), "its TLS certificate has expired (it must get a new one: "
                       "./make_certs.sh, then SIGHUP)"),
    (verify_error(20), "its TLS certificate is not signed by the CA in /etc/market/ca.crt "
                       "(our --tls-ca)"),
    (ssl_error("PEER_DID_NOT_RETURN_A_CERTIFICATE"),
     "it sent no TLS client certificate (a frontend needs --tls-cert and --tls-key)"),
    (ssl_error("TLSV1_ALERT_UNKNOWN_CA"),
     "it does not trust our TLS certificate: its --tls-ca is not the CA that signed our "
     "--tls-cert"),
    (ssl_error("SSLV3_ALERT_BAD_CERTIFICATE"),
     "it refused our TLS certificate (not valid for the name it dialled? our --tls-cert must "
     "list it)"),
    (ssl_error("SSLV3_ALERT_CERTIFICATE_EXPIRED"),
     "it refused our TLS certificate: it has expired (make a new --tls-cert with "
     "./make_certs.sh, then send SIGHUP)"),
])
def test_a_server_says_what_is_wrong_with_a_client_naming_the_flag(error, sentence):
    assert tls.explain_at_server(error, CLIENT_CONTEXT)[0] == sentence


def test_refusals_are_logged_once_then_folded_then_again(caplog):
    complaints = tls.Complaints(every=0.2)
    caplog.set_level(logging.DEBUG, logger="market.net.tls")
    for port in range(3):
        complaints.refused(f"10.0.0.1:{port}", tls.Refused("it speaks plaintext", "plaintext"))
    complaints.refused("10.0.0.2:1", tls.Refused("it sent nothing", "silent", quiet=True))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["refused a TLS connection from 10.0.0.1:0: it speaks plaintext"]
    assert any(r.levelno == logging.DEBUG and "it sent nothing" in r.getMessage()
               for r in caplog.records)
    time.sleep(0.25)
    complaints.refused("10.0.0.1:9", tls.Refused("it speaks plaintext", "plaintext"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[-1] == ("refused a TLS connection from 10.0.0.1:9: it speaks plaintext "
                            "(2 more like it since the last such line)")


def contexts(certs, mutual: bool = True):
    server = tls.server_context(str(certs / "product_db.crt"), str(certs / "product_db.key"),
                                str(certs / "ca.crt"), mutual)
    client = tls.client_context(str(certs / "ca.crt"), str(certs / "seller_server.crt"),
                                str(certs / "seller_server.key"))
    return server, client


def tls_pair(certs, timeout: float = 5.0):
    """A TLS stream at each end of a socket pair: (server's, client's)."""
    server_sock, client_sock = socket.socketpair()
    server_context, client_context = contexts(certs)
    accepted: list = []
    thread = threading.Thread(target=lambda: accepted.append(
        tls.accept(server_sock, server_context, timeout)))
    thread.start()
    client = tls.connect(client_sock, client_context, "localhost", timeout)
    thread.join()
    return accepted[0], client


def test_a_stream_carries_lines_and_a_kernel_timeout_ends_a_read(certs):
    server, client = tls_pair(certs)
    assert server.version() in ("TLSv1.2", "TLSv1.3")
    assert server.getpeercert()["subject"] == ((("commonName", "seller_server"),),)
    client.sendall(b'{"op":"Hello"}\n{"op":')
    client.sendall(b'"Stats"}\n')
    lines = LineReader(server, idle_timeout=0.2, read_timeout=0.2)
    assert [lines.read_line(), lines.read_line()] == [b'{"op":"Hello"}\n', b'{"op":"Stats"}\n']
    started = time.monotonic()
    assert lines.read_line() is None  # nothing more within the idle timeout
    assert 0.15 < time.monotonic() - started < 2
    server.sendall(b"x" * 100_000 + b"\n")  # several records
    reader = client.makefile("rb")
    assert reader.readline() == b"x" * 100_000 + b"\n"
    set_socket_timeout(client, socket.SO_RCVTIMEO, 0.1)
    assert reader.readline() == b""  # the kernel timeout reads as no data
    server.close()
    set_socket_timeout(client, socket.SO_RCVTIMEO, 2)
    assert client.recv(10) == b""  # end of stream
    client.close()


def test_shutting_the_socket_down_ends_a_read_blocked_in_the_stream(certs):
    """drop_connections and drain shut the connection's socket down from another thread;
    the stream reads through a descriptor of its own, and must see end of stream."""
    server, client = tls_pair(certs)
    set_socket_timeout(server, socket.SO_RCVTIMEO, 30)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(server.recv(100)))
    reader.start()
    time.sleep(0.1)  # blocked in the kernel's recv
    started = time.monotonic()
    server.sock.shutdown(socket.SHUT_RD)
    reader.join(5)
    assert read == [b""] and time.monotonic() - started < 2
    server.close()
    client.close()


def test_closing_a_stream_closes_the_connection(certs):
    server, client = tls_pair(certs)
    set_socket_timeout(client, socket.SO_RCVTIMEO, 5)
    server.close()  # both descriptors: the peer sees end of stream, not silence
    started = time.monotonic()
    assert client.recv(10) == b"" and time.monotonic() - started < 2
    client.close()


def test_a_plaintext_client_is_answered_in_plaintext_and_refused(certs):
    server_sock, client_sock = socket.socketpair()
    client_sock.sendall(b'{"op":"Hello"}\n')
    with pytest.raises(tls.Refused) as refused:
        tls.accept(server_sock, contexts(certs)[0], 2)
    assert refused.value.cause == "plaintext" and not refused.value.quiet
    assert client_sock.makefile("rb").readline() == tls.PLAINTEXT_REPLY
    assert tls.PLAINTEXT_AT_TLS_PORT.encode() in tls.PLAINTEXT_REPLY


def test_a_silent_client_is_given_up_within_the_timeout_quietly(certs):
    server_sock, client_sock = socket.socketpair()
    started = time.monotonic()
    with pytest.raises(tls.Refused) as refused:
        tls.accept(server_sock, contexts(certs)[0], 0.3)
    assert refused.value.quiet and time.monotonic() - started < 2
    client_sock.sendall(b"\x16\x03\x01")  # a handshake begun, never finished
    with pytest.raises(tls.Refused) as refused:
        tls.accept(server_sock, contexts(certs)[0], 0.3)
    assert refused.value.quiet and "did not finish the TLS handshake" in str(refused.value)


def test_a_plaintext_port_answers_a_tls_handshake_and_lets_plaintext_through(certs):
    server_sock, client_sock = socket.socketpair()
    failures: list = []

    def dial() -> None:
        try:
            tls.connect(client_sock, contexts(certs)[1], "localhost", 5)
        except TlsError as error:
            failures.append(str(error))
    thread = threading.Thread(target=dial)
    thread.start()
    set_socket_timeout(server_sock, socket.SO_RCVTIMEO, 5)
    assert tls.answer_tls_at_plaintext_port(server_sock)
    thread.join()
    assert failures and failures[0].startswith("it does not speak TLS (it answered in plaintext)")

    server_sock, client_sock = socket.socketpair()
    client_sock.sendall(b'{"op":"Hello"}\n')
    set_socket_timeout(server_sock, socket.SO_RCVTIMEO, 5)
    assert not tls.answer_tls_at_plaintext_port(server_sock)
    assert server_sock.recv(100) == b'{"op":"Hello"}\n'  # only looked at, not taken


@pytest.mark.parametrize("start, hello", [
    (b"\x16\x03\x01\x02\x00\x01\x00", True), (b"\x16\x03\x03\x00\x80\x01", True),
    (b"\x16\x03\x01\x02\x00", False), (b"\x16{\"op\":1}\n", False),
    (b"\x16\x03\x09\x02\x00\x01", False), (b'{"op":"Hello"}\n', False), (b"", False),
])
def test_only_a_client_hello_is_taken_for_tls_at_a_plaintext_port(start, hello):
    assert tls.is_client_hello(start) is hello


def test_reload_loads_new_files_and_keeps_the_old_ones_when_one_fails(certs, tmp_path, caplog):
    for name in ("ca.crt", "product_db.crt", "product_db.key"):
        shutil.copy(certs / name, tmp_path / name)
    files = tls.TlsFiles(str(tmp_path / "product_db.crt"), str(tmp_path / "product_db.key"),
                         str(tmp_path / "ca.crt"), mutual=True)
    assert files.server.verify_mode == ssl.CERT_REQUIRED
    assert files.server.minimum_version == ssl.TLSVersion.TLSv1_2
    seen = []
    files.on_reload(seen.append)
    server, client = files.server, files.client
    assert files.reload() and seen == [files]
    assert files.server is not server and files.client is not client
    server = files.server
    (tmp_path / "product_db.key").write_bytes((certs / "customer_db.key").read_bytes())
    assert not files.reload()
    assert files.server is server and seen == [files]
    assert "TLS files not reloaded, the ones loaded before stay in use: the key " in caplog.text
    assert "is not the key of the certificate" in caplog.text


def test_a_service_needs_all_three_tls_flags_and_files_that_load(certs, caplog):
    parser = service_parser("test", "TEST", 1)
    assert load_tls(parser.parse_args([]), mutual=True) is None
    with pytest.raises(SystemExit):
        load_tls(parser.parse_args(["--tls-cert", str(certs / "product_db.crt")]), mutual=True)
    assert "TLS needs all of --tls-cert, --tls-key, --tls-ca; --tls-key and --tls-ca are " \
           "missing" in caplog.text
    with pytest.raises(SystemExit):
        load_tls(parser.parse_args(["--tls-cert", str(certs / "product_db.crt"), "--tls-key",
                                    str(certs / "product_db.key"), "--tls-ca",
                                    str(certs / "nope.crt")]), mutual=True)
    assert f"cannot load the CA certificate {certs / 'nope.crt'} (--tls-ca): no such file" \
        in caplog.text


def test_a_dedicated_client_dials_with_its_parents_context_even_after_a_reload(certs):
    first, second = contexts(certs)[1], contexts(certs)[1]
    parent = Client(("127.0.0.1", 1), tls=first, server_hostname="db1.example")
    child, sibling = parent.dedicated(), parent.sibling()
    assert child.dialer is parent.dialer and sibling.dialer is parent.dialer
    assert child.dialer.tls is first and sibling.dialer.server_hostname == "db1.example"
    parent.dialer.use_tls(second)
    assert child.dialer.tls is second


def test_a_server_and_a_client_over_tls_in_process(certs):
    """One connection, kept (no session tickets, so an idle one does not look closed);
    a drain ends it, as in plaintext; a client without a certificate is refused."""
    files = tls.TlsFiles(str(certs / "product_db.crt"), str(certs / "product_db.key"),
                         str(certs / "ca.crt"), mutual=True)
    server = Server(("127.0.0.1", 0), Service(), read_timeout=2, tls=files)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    client = Client(server.server_address[:2], timeout=5, tls=contexts(certs)[1])
    try:
        assert client.call("Hello")["service"] == "service"
        assert client.call("Stats")["connections"]["open"] == 1
        conn = client._idle[0]
        assert not conn.looks_closed()
        anonymous = Client(server.server_address[:2], timeout=5,
                           tls=tls.client_context(str(certs / "ca.crt")))
        with pytest.raises(Exception) as refused:
            anonymous.call("Hello")
        assert "it asks for a TLS client certificate" in str(refused.value.__cause__)
        server.shutdown()
        server.drain(2)
        assert conn.looks_closed()
    finally:
        client.close()
        server.server_close()


def test_the_benchmark_runs_its_own_services_over_tls_or_verifies_a_target(certs, tmp_path,
                                                                          monkeypatch):
    for name in ("MARKET_TLS_CA", "MARKET_TLS_CERT", "MARKET_TLS_KEY"):
        monkeypatch.delenv(name, raising=False)
    args, target = performance.parse_args(["--tls", "--quick", "--out", str(tmp_path)])
    assert target is None and (args.tls_dir / "ca.crt").exists()
    assert performance.clients_ca(args, None) == str(args.tls_dir / "ca.crt")
    _, target = performance.parse_args([
        "--target", "127.0.0.1:1,127.0.0.1:2", "--target-dbs", "127.0.0.1:3",
        "--tls-ca", str(certs / "ca.crt"), "--tls-cert", str(certs / "seller_server.crt"),
        "--tls-key", str(certs / "seller_server.key")])
    assert target.tls is not None and target.db_tls is not None
    with pytest.raises(SystemExit):
        performance.parse_args(["--tls", "--target", "127.0.0.1:1,127.0.0.1:2"])
