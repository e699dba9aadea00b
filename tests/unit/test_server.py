"""market/server.py: parse_ready_line, Request.check_deadline, Service.respond in process."""
from __future__ import annotations

import time

import pytest

from market.net.server import READY, parse_ready_line
from market.net.service import CONTRACT_VERSION, Op, Request, Service
from protocol import ApiError, Int, RawResult, Str, decode

# -- parse_ready_line ---------------------------------------------------------------

@pytest.mark.parametrize("line, address", [
    ("product db ready on 127.0.0.1:9001\n", ("127.0.0.1", 9001)),
    ("x ready on ::1:8002", ("::1", 8002)),
    (READY.format(name="buyer server", host="0.0.0.0", port=0), ("0.0.0.0", 0)),
])
def test_parse_ready_line_reads_host_and_port(line, address):
    assert parse_ready_line(line) == address


@pytest.mark.parametrize("line", ["", "starting up", "x ready on 127.0.0.1", "x ready on h:",
                                  "x ready on h:port", "x ready at h:1", "x ready on h:-1"])
def test_parse_ready_line_returns_none_for_other_lines(line):
    assert parse_ready_line(line) is None


def test_parse_ready_line_with_a_superscript_port_is_not_a_ready_line():
    assert parse_ready_line("x ready on h:²") is None


# -- Request.check_deadline --------------------------------------------------------

def test_check_deadline_refuses_once_the_deadline_has_passed():
    with pytest.raises(ApiError) as info:
        Request("Op", None, deadline=time.time() - 0.5).check_deadline()
    assert info.value.code == "unavailable"


def test_check_deadline_passes_in_time_or_without_a_deadline():
    Request("Op", None, deadline=time.time() + 60).check_deadline()
    Request("Op", None).check_deadline()


# -- Service.respond ----------------------------------------------------------------

class Echo(Service):
    name = "echo service"
    kind = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.calls = []
        self.ops.update({
            "Echo": Op(self.echo, {"text": Str(1, 8)}, needs_session=False),
            "Mine": Op(self.mine, {}),
            "Raw": Op(lambda request: RawResult(b'{"n":1}'), needs_session=False),
            "Boom": Op(self.boom, needs_session=False),
            "Count": Op(lambda request, n: {"n": n}, {"n": Int(0, 5)}, needs_session=False),
        })

    def echo(self, request, text):
        self.calls.append(text)
        return {"text": text}

    def mine(self, request):
        return {"session": request.session}

    def boom(self, request):
        raise KeyError("secret detail")


def respond(line: bytes) -> dict:
    return decode(Echo().respond(line), exact=False)


def error(line: bytes) -> tuple[str, str]:
    reply = respond(line)
    assert reply["ok"] is False
    return reply["error"]["code"], reply["error"]["message"]


def test_hello_says_what_the_service_is():
    assert respond(b'{"op":"Hello","id":1}') == {
        "ok": True, "result": {"service": "echo", "version": CONTRACT_VERSION}, "id": 1}


def test_a_reply_is_one_line_echoing_the_id():
    line = Echo().respond(b'{"op":"Echo","args":{"text":"hi"},"id":{"k":[1,2.5]}}\n')
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line, exact=False) == {"ok": True, "result": {"text": "hi"},
                                         "id": {"k": [1, 2.5]}}


def test_a_raw_result_is_spliced_into_the_reply():
    assert respond(b'{"op":"Raw","id":"x"}') == {"ok": True, "result": {"n": 1}, "id": "x"}


@pytest.mark.parametrize("line, message", [
    (b'{"args":{}}', "'op' must be a string."),
    (b'{"op":5}', "'op' must be a string."),
    (b'{"op":"Echo","args":{"text":"a"},"extra":1}', "Unknown field 'extra' in the message."),
    (b'{"op":"Echo","args":[]}', "'args' must be a JSON object."),
    (b'{"op":"Echo","args":{"text":"a","more":1}}', "Unknown field 'more' in args."),
    (b'{"op":"Echo","args":{}}', "Missing field 'text' in args."),
    (b'{"op":"Echo","args":{"text":"toolongtext"}}', "'text' must be a string of 1 to 8 characters."),
    (b'{"op":"Count","args":{"n":true}}', "'n' must be an integer from 0 to 5."),
    (b'{"op":"Mine","session":5}', "'session' must be a string."),
    (b"[1]", "The message must be a JSON object."),
    (b"{not json", "The message is not valid JSON."),
    (b'{"op":"Hello","id":1e999999}', "A number in the message is too large."),
])
def test_envelope_and_argument_errors_are_bad_request(line, message):
    assert error(line) == ("bad_request", message)


def test_an_unknown_op_is_unknown_op():
    assert error(b'{"op":"Nope"}') == ("unknown_op", "There is no op 'Nope' on the echo service.")


def test_an_op_needing_a_session_without_one_is_invalid_session():
    assert error(b'{"op":"Mine"}')[0] == "invalid_session"
    assert error(b'{"op":"Mine","session":""}')[0] == "invalid_session"
    assert respond(b'{"op":"Mine","session":"tok"}')["result"] == {"session": "tok"}


def test_a_bad_request_does_not_reach_the_handler():
    service = Echo()
    service.respond(b'{"op":"Echo","args":{"text":"a","x":1}}\n')
    service.respond(b'{"op":"Echo","args":{"text":""}}\n')
    assert service.calls == []


def test_an_error_reply_keeps_the_request_id_when_it_was_readable():
    assert respond(b'{"op":"Nope","id":42}')["id"] == 42
    assert respond(b'{"op":"Nope","id":42')["id"] is None


def test_an_unexpected_exception_is_internal_without_details():
    reply = respond(b'{"op":"Boom","id":3}')
    assert reply["error"]["code"] == "internal" and reply["id"] == 3
    assert "secret detail" not in reply["error"]["message"]
