"""protocol.py: framing, the envelope, ExactDollars."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest

import protocol
from protocol import (
    MAX_LINE,
    ApiError,
    ExactDollars,
    decode,
    encode,
    envelope,
    error_reply,
    read_line,
    result_of,
)


def code_of(call, *args) -> str:
    with pytest.raises(ApiError) as info:
        call(*args)
    return info.value.code


# -- encode / decode ------------------------------------------------------------

def test_encode_is_one_compact_utf8_line():
    assert encode({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}\n'.encode()


def test_round_trip_keeps_fractions_exact_as_decimal():
    message = decode(encode({"name": "lamp ☃", "n": 3, "nested": {"x": [True, None]}}))
    assert message == {"name": "lamp ☃", "n": 3, "nested": {"x": [True, None]}}
    assert decode(b'{"price":17.50}') == {"price": Decimal("17.50")}
    assert type(decode(b'{"price":17.50}', exact=False)["price"]) is float


def test_decode_refuses_invalid_utf8():
    with pytest.raises(ApiError) as info:
        decode(b'{"a":"\xff"}\n')
    assert (info.value.code, info.value.message) == ("bad_request",
                                                     "The message is not valid UTF-8.")


@pytest.mark.parametrize("line", [b"[1,2]", b'"text"', b"3", b"null"])
def test_decode_refuses_a_value_that_is_not_an_object(line):
    with pytest.raises(ApiError, match="must be a JSON object"):
        decode(line)


@pytest.mark.parametrize("line", [b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
                                  b'{"a":', b"", b"{'a':1}"])
@pytest.mark.parametrize("exact", [True, False])
def test_decode_refuses_nan_infinity_and_broken_json(line, exact):
    with pytest.raises(ApiError, match="not valid JSON") as info:
        decode(line, exact=exact)
    assert info.value.code == "bad_request"


@pytest.mark.parametrize("line", [b'{"a":"\\ud800"}', b'{"a":"x\\udfff"}',
                                  b'{"\\ud800":1}', b'{"a":[{"b":"\\udc00"}]}'])
def test_decode_refuses_lone_surrogate_escapes_anywhere(line):
    with pytest.raises(ApiError, match="lone surrogate"):
        decode(line)


def test_decode_accepts_an_escaped_surrogate_pair():
    assert decode(b'{"a":"\\ud83d\\ude00"}') == {"a": "\U0001F600"}


def test_decode_refuses_deep_nesting_without_recursion_error():
    assert code_of(decode, b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}") == "bad_request"


# -- read_line ----------------------------------------------------------------------

def test_read_line_returns_lines_in_order_then_none():
    stream = io.BytesIO(b'{"a":1}\n{"b":2}\n')
    assert read_line(stream) == b'{"a":1}\n'
    assert read_line(stream) == b'{"b":2}\n'
    assert read_line(stream) is None


def test_read_line_accepts_exactly_max_line_bytes():
    line = b"x" * MAX_LINE + b"\n"
    assert read_line(io.BytesIO(line + b"{}\n")) == line


def test_read_line_refuses_max_line_plus_one_bytes():
    assert code_of(read_line, io.BytesIO(b"x" * (MAX_LINE + 1) + b"\n")) == "too_large"


def test_read_line_refuses_an_endless_line_without_newline():
    assert code_of(read_line, io.BytesIO(b"x" * (MAX_LINE + 10))) == "too_large"


def test_read_line_drops_a_half_line_at_end_of_stream():
    stream = io.BytesIO(b'{"a":1}\n{"b":')
    assert read_line(stream) == b'{"a":1}\n'
    assert read_line(stream) is None


# -- envelope, replies, errors ------------------------------------------------------

def test_envelope_leaves_out_empty_args_and_absent_session():
    assert envelope("Hello") == {"op": "Hello"}
    assert envelope("Hello", {}) == {"op": "Hello"}
    assert envelope("GetItem", {"item_id": 1}, "tok") == {
        "op": "GetItem", "args": {"item_id": 1}, "session": "tok"}


def test_error_reply_carries_code_message_and_id():
    reply = error_reply(ApiError("not_found", "No item 9."), 7)
    assert reply == {"ok": False, "error": {"code": "not_found", "message": "No item 9."},
                     "id": 7}


def test_api_error_refuses_an_unknown_code():
    with pytest.raises(ValueError):
        ApiError("oops", "x")


def test_result_of_returns_the_result_or_an_empty_dict():
    assert result_of({"ok": True, "result": {"a": 1}, "id": None}) == {"a": 1}
    assert result_of({"ok": True}) == {}


def test_result_of_raises_the_error_reply():
    with pytest.raises(ApiError) as info:
        result_of({"ok": False, "error": {"code": "conflict", "message": "Sold out."}})
    assert (info.value.code, info.value.message) == ("conflict", "Sold out.")


@pytest.mark.parametrize("reply", [{"ok": False, "error": {"code": "teapot", "message": "m"}},
                                   {"ok": False, "error": {"message": "m"}},
                                   {"ok": False}])
def test_result_of_turns_an_unknown_or_missing_code_into_internal(reply):
    assert code_of(result_of, reply) == "internal"


@pytest.mark.parametrize("reply", [{"ok": False, "error": "boom"},
                                   {"ok": False, "error": {"code": ["x"], "message": "m"}}])
def test_result_of_turns_a_malformed_error_into_internal(reply):
    assert code_of(result_of, reply) == "internal"


# -- ExactDollars ---------------------------------------------------------------------

def test_exact_dollars_is_a_bare_json_number_inside_a_dict():
    message = {"total": ExactDollars(123456789012345678), "list": [ExactDollars(-5)]}
    assert encode(message) == b'{"total":1234567890123456.78,"list":[-0.05]}\n'
    assert decode(encode(message))["total"] == Decimal("1234567890123456.78")


def test_a_user_string_cannot_forge_an_exact_amount():
    mark_digits = protocol._EXACT_MARK[1:]  # all of the mark but its NUL
    strings = [mark_digits + "1.00", "\\u0000" + mark_digits + "1.00",
               '"\\u0000' + mark_digits + '1.00"', "x\\" + mark_digits + "2.00"]
    message = {"names": strings, "total": ExactDollars(1)}
    assert decode(encode(message)) == {"names": strings, "total": Decimal("0.01")}


def test_encode_refuses_unknown_types_and_nan():
    with pytest.raises(TypeError):
        encode({"a": object()})
    with pytest.raises(ValueError):
        encode({"a": float("nan")})


# -- validation: the generic pieces (the contract's fields are in test_fields.py) -----

def test_str_no_space_refuses_any_whitespace():
    check = protocol.Str(1, 8, no_space=True)
    assert check("w", "desk") == "desk"
    for bad in ("a b", "a\u00a0b", "a\u3000b"):
        with pytest.raises(ApiError, match="without whitespace"):
            check("w", bad)


def test_record_validates_its_own_schema_naming_itself():
    line = protocol.Record({"item_id": protocol.Int(1), "quantity": protocol.Int(1)})
    assert line("line", {"item_id": 2, "quantity": 3}) == {"item_id": 2, "quantity": 3}
    with pytest.raises(ApiError, match="Missing field 'quantity' in line"):
        line("line", {"item_id": 2})
    with pytest.raises(ApiError, match="'line' must be a JSON object"):
        line("line", [2, 3])


def test_list_of_checks_count_and_each_element_by_index():
    ids = protocol.ListOf(protocol.Int(1), max_count=3)
    assert ids("ids", [1, 2, 3]) == [1, 2, 3]
    assert ids("ids", []) == []
    with pytest.raises(ApiError, match="at most 3 entries"):
        ids("ids", [1, 2, 3, 4])
    with pytest.raises(ApiError, match=r"'ids\[1\]' must be an integer"):
        ids("ids", [1, 0])
    with pytest.raises(ApiError, match="at most 3 entries"):
        ids("ids", {"0": 1})


SCHEMA = {"item_id": protocol.Int(1), "limit": protocol.Omittable(protocol.Int(1, 5), 3)}


def test_validate_fills_an_omitted_field_with_its_default():
    assert protocol.validate(SCHEMA, {"item_id": 1}) == {"item_id": 1, "limit": 3}
    assert protocol.validate(SCHEMA, {"item_id": 1, "limit": 5}) == {"item_id": 1, "limit": 5}


def test_omittable_still_checks_a_value_that_is_present():
    with pytest.raises(ApiError, match="'limit' must be an integer from 1 to 5"):
        protocol.validate(SCHEMA, {"item_id": 1, "limit": 6})
    with pytest.raises(ApiError):
        protocol.validate(SCHEMA, {"item_id": 1, "limit": None})


def test_validate_refuses_unknown_and_missing_fields():
    with pytest.raises(ApiError, match="Unknown field 'a' in args"):
        protocol.validate(SCHEMA, {"item_id": 1, "b": 1, "a": 1})
    with pytest.raises(ApiError, match="Missing field 'item_id' in args"):
        protocol.validate(SCHEMA, {})
    with pytest.raises(ApiError, match="'args' must be a JSON object"):
        protocol.validate(SCHEMA, [1])
