"""TLS for the tests: certificates made with ./make_certs.sh (and, for the failures, with
the openssl command line: another CA's, an expired one), the services' TLS flags, a
marketplace serving TLS only, and clients of it."""
from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

from market.net.client import Client
from market.net.tls import client_context
from market.net.tls import connect as tls_connect
from market.ops.launch import ServiceProcess

from .market import ROOT, Api, Market, start_market

# Each service, and the keyword of ``start_market`` that takes its extra flags.
ARGS_OF = {"product_db": "product_args", "customer_db": "customer_args",
           "seller_server": "seller_args", "buyer_server": "buyer_args"}


def make_certs(directory: Path, *hosts: str) -> Path:
    """./make_certs.sh --dir ``directory`` ``hosts``; the directory."""
    subprocess.run([str(ROOT / "make_certs.sh"), "--dir", str(directory), *hosts], check=True,
                   capture_output=True, text=True, timeout=60)
    return directory


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True, timeout=60)


def signed_cert(directory: Path, name: str, ca_dir: Path, days: str = "30") -> tuple[Path, Path]:
    """A certificate ``name`` for localhost and 127.0.0.1 signed by the CA in ``ca_dir``,
    valid ``days`` (``"-1"``: it expired yesterday; OpenSSL 3.0 takes a negative count
    and writes a validity that ends before it starts). Returns (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca.crt"), "-CAkey",
            str(ca_dir / "ca.key"), "-set_serial", "7", "-days", days, "-extfile", str(ext),
            "-out", str(cert))
    key.chmod(0o600)
    return cert, key


def tls_flags(certs: Path, name: str, cert: Path | None = None,
              key: Path | None = None) -> list[str]:
    """The three TLS flags of service ``name`` with the certificates in ``certs`` (or
    ``cert``/``key`` instead of its own)."""
    return ["--tls-cert", str(cert or certs / f"{name}.crt"),
            "--tls-key", str(key or certs / f"{name}.key"), "--tls-ca", str(certs / "ca.crt")]


def start_tls_market(certs: Path, **kwargs) -> Market:
    """``start_market`` with every service serving TLS (``certs``: of ``make_certs``), and
    ``Market.tls`` the context its clients verify the frontends with."""
    for name, key in ARGS_OF.items():
        kwargs[key] = (*tls_flags(certs, name), *kwargs.get(key, ()))
    market = start_market(**kwargs)
    market.tls = client_context(str(certs / "ca.crt"))
    stats = client_context(str(certs / "ca.crt"), str(certs / "seller_server.crt"),
                           str(certs / "seller_server.key"))
    for proc in market.procs():
        proc.tls = stats  # ServiceProcess asks Stats over it (a database wants a certificate)
    return market


def logged_frontend(market: Market, log: Path, script: str, *args: str) -> ServiceProcess:
    """Like ``Market.another_frontend`` (``args`` last, so they override), logging to
    ``log``."""
    frontend = ServiceProcess(script, "--product-db", market.product_db.where,
                              "--customer-db", market.customer_db.where, "--db-timeout", "2",
                              *args, log=log).start()
    market.extra.append(frontend)
    return frontend


def tls_api(market: Market, address: tuple[str, int], timeout: float = 30) -> Api:
    """A client over TLS of the frontend at ``address`` (closed with ``market``)."""
    api = Api(Client(address, timeout=timeout, tls=market.tls))
    market.clients.append(api.client)
    return api


def peer_serial(address: tuple[str, int], ca: Path) -> int:
    """The serial number of the certificate the server at ``address`` shows a new
    connection (verified against ``ca``)."""
    sock = socket.create_connection(address, timeout=10)
    try:
        stream = tls_connect(sock, client_context(str(ca)), address[0], 10)
        serial = int(stream.getpeercert()["serialNumber"], 16)
        stream.close()
        return serial
    finally:
        sock.close()


def handshake_error(address: tuple[str, int], context: ssl.SSLContext,
                    hostname: str | None = None) -> str:
    """The sentence a client's handshake with the server at ``address`` fails with ('' if
    it succeeds), a ``Hello`` sent and answered (over TLS 1.3 a server's verdict on the
    client's certificate comes with its first record)."""
    sock = socket.create_connection(address, timeout=10)
    try:
        stream = tls_connect(sock, context, hostname or address[0], 10)
        try:
            stream.sendall(b'{"op":"Hello"}\n')
            stream.recv(4096)
        finally:
            stream.close()
        return ""
    except ConnectionError as error:
        return str(error)
    finally:
        sock.close()
