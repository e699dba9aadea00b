"""market/sockets.py: LineReader over a socketpair (no network)."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from market.net.sockets import LineReader
from protocol import MAX_LINE, ApiError


@pytest.fixture
def pair():
    reader_side, writer_side = socket.socketpair()
    yield reader_side, writer_side
    reader_side.close()
    writer_side.close()


def reader(sock, idle=5.0, read=5.0) -> LineReader:
    return LineReader(sock, idle_timeout=idle, read_timeout=read)


def send_in_background(sock, data: bytes, delay: float = 0.0) -> threading.Thread:
    def send():
        time.sleep(delay)
        try:
            sock.sendall(data)
        except OSError:  # the reader closed early, as after too_large
            pass
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_one_chunk_is_split_into_lines(pair):
    ours, theirs = pair
    theirs.sendall(b'{"a":1}\n{"b":2}\n\n')
    lines = reader(ours)
    assert [lines.read_line() for _ in range(3)] == [b'{"a":1}\n', b'{"b":2}\n', b"\n"]


def test_a_line_in_pieces_is_joined(pair):
    ours, theirs = pair
    theirs.sendall(b'{"a":')
    send_in_background(theirs, b'1}\n{"b"', delay=0.02)
    lines = reader(ours)
    assert lines.read_line() == b'{"a":1}\n'
    theirs.sendall(b":2}\n")
    assert lines.read_line() == b'{"b":2}\n'


def test_end_of_stream_gives_none_and_drops_a_half_line(pair):
    ours, theirs = pair
    theirs.sendall(b'{"a":1}\n{"b":')
    theirs.shutdown(socket.SHUT_WR)
    lines = reader(ours)
    assert lines.read_line() == b'{"a":1}\n'
    assert lines.read_line() is None


def test_a_line_of_exactly_max_line_bytes_is_read(pair):
    ours, theirs = pair
    sender = send_in_background(theirs, b"x" * MAX_LINE + b"\nnext\n")
    lines = reader(ours)
    assert lines.read_line() == b"x" * MAX_LINE + b"\n"
    assert lines.read_line() == b"next\n"
    sender.join()


@pytest.mark.parametrize("tail", [b"\n", b"", b"more bytes"])
def test_a_line_past_max_line_is_too_large(pair, tail):
    ours, theirs = pair
    sender = send_in_background(theirs, b"x" * (MAX_LINE + 1) + tail)
    with pytest.raises(ApiError) as info:
        reader(ours).read_line()
    assert info.value.code == "too_large"
    ours.close()  # as the server does: the rest of the line is never read
    sender.join()


def test_idle_timeout_gives_none(pair):
    ours, _ = pair
    started = time.monotonic()
    assert reader(ours, idle=0.05).read_line() is None
    assert time.monotonic() - started < 2


def test_a_started_line_must_finish_within_read_timeout(pair):
    ours, theirs = pair
    theirs.sendall(b'{"a":')
    started = time.monotonic()
    assert reader(ours, idle=5.0, read=0.05).read_line() is None
    assert time.monotonic() - started < 2
