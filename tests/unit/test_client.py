"""market/client.py: parse_address and auth_proof (no connections)."""
from __future__ import annotations

import argparse

import pytest

from market.net.client import parse_address
from market.net.secret import proof as auth_proof


@pytest.mark.parametrize("text, address", [
    ("127.0.0.1:9001", ("127.0.0.1", 9001)),
    ("db.example:80", ("db.example", 80)),
    ("[::1]:9002", ("::1", 9002)),
    ("::1:9002", ("::1", 9002)),
    (":9001", ("127.0.0.1", 9001)),
])
def test_parse_address(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["9001", "host", "host:", "host:port", "host:-1", "h:9 1", ""])
def test_parse_address_refuses_text_without_a_port(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected HOST:PORT"):
        parse_address(text)


def test_parse_address_refuses_a_superscript_port():
    with pytest.raises(argparse.ArgumentTypeError):
        parse_address("host:²")


def test_auth_proof_is_hmac_sha256_hex_rfc4231_case_2():
    assert auth_proof(b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_auth_proof_is_deterministic_and_depends_on_secret_and_challenge():
    proof = auth_proof(b"s" * 32, b"c" * 32)
    assert proof == auth_proof(b"s" * 32, b"c" * 32)
    assert len(proof) == 64 and int(proof, 16) >= 0
    assert auth_proof(b"t" * 32, b"c" * 32) != proof
    assert auth_proof(b"s" * 32, b"d" * 32) != proof
