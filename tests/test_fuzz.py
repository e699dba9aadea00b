"""Seeded fuzzing of all four services over raw sockets.

Cases are request lines: random bytes, truncated and mutated valid requests,
every field of every op (the databases' internal ops too, read from the op
tables, and the deadline of their envelope) set to a wrong type or value,
unknown ops and fields, huge numbers, NaN/Infinity, deep nesting, lines
around 1 MiB, pipelines and connections that close mid-line. After each
batch every service must still answer, no reply may carry a traceback or the
code ``internal``, and the stored state must be exactly what the valid
requests made it.

Repeat a run with ``FUZZ_SEED=<the seed printed on failure>``; ``FUZZ_CASES``
sets the number of random cases (default 20000).
"""
from __future__ import annotations

import json
import os
import random

import pytest
from helpers.market import keyed, start_market
from helpers.wire import Wire

from buyer_server import BuyerFrontend
from customer_db import CustomerDB
from market.frontend.passwords import scrypt
from market.keys import IdempotencyKey
from market.net.client import Client
from market.paging import CURSOR
from product_db import ProductDB
from protocol import (
    MAX_LINE,
    ApiError,
    Hex,
    Int,
    Keywords,
    ListOf,
    Omittable,
    OneOf,
    Price,
    Record,
    Str,
    decode,
    validate,
)
from seller_server import SellerFrontend

SEED = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2 ** 32))
RANDOM_CASES = int(os.environ.get("FUZZ_CASES", "20000"))
BATCH = 1000

CODES = {"bad_request", "unknown_op", "auth_failed", "invalid_session", "forbidden",
         "not_found", "conflict", "too_large", "unavailable"}  # never "internal"

SERVICES = {  # name -> (the service's op table, the role whose token its session ops take)
    "product_db": (ProductDB().ops, None),
    "customer_db": (CustomerDB().ops, "buyer"),
    "seller": (SellerFrontend(None, None).ops, "seller"),
    "buyer": (BuyerFrontend(None, None).ops, "buyer"),
}
# Ops that change nothing a snapshot shows; a random or mutated line is sent
# only if it cannot be a valid call of any other op. (Authenticate is always
# refused here: the fuzzed services run without a secret.)
READ_OPS = {"GetItem", "GetItems", "Search", "SellerItems", "HeldReservations", "CheckSession",
            "GetSellerRating", "GetCart", "GetPurchases", "SearchItemsForSale", "DisplayCart",
            "DisplayItemsForSale", "GetBuyerPurchases", "GetSalt", "Hello", "Authenticate"}
DATABASES = ("product_db", "customer_db")  # they also take a "deadline" in the envelope
ALL_OPS = {op for ops, _ in SERVICES.values() for op in ops}

HOLE = "\x00hole\x00"  # stands for the raw JSON text spliced into a request
WRONG_VALUES = [
    "null", "true", "false", "0", "-1", "1.5", "0.001", "-0.0", "1.0", "100.001",
    "1e999999", "-1e999999", "1e-999999", "1E+2", "1" + "0" * 5000, "9" * 4000,
    "9007199254740993", "-9007199254740993", "NaN", "Infinity", "-Infinity",
    '""', '"x"', '"' + "x" * 300 + '"', '"a b"', '"\\u0000"', '"\\n"', '"\\u0085"',
    '"\\ud800"', '"x\\udfff"', '"1"', '"up"', '"new"', '"buyer"', '"12/99"',
    "[]", "[1]", '["x"]', "[null]", '["a b"]', '["' + "k" * 9 + '"]', "[" * 1000 + "]" * 1000,
    "[" + ",".join(['"kw"'] * 6) + "]", "[" + ",".join(["1"] * 10_001) + "]",
    "{}", '{"a":1}', '{"item_id":1}', '{"item_id":1,"quantity":1,"extra":1}',
]
# Values of every JSON type but the field's own: each must be refused.
WRONG_TYPES = {int: ["null", "true", '"1"', "[]", "{}"], str: ["null", "false", "1", "[]", "{}"],
               list: ["null", "true", "1", '"kw"', "{}"], dict: ["null", "true", "1", '"x"', "[]"]}
BAD_IDS = ["1e999999", "NaN", "-Infinity", "1" + "0" * 5000, '"\\udc00"',
           "[" * 150 + "]" * 150, '{"a":' * 150 + "1" + "}" * 150]
# A database refuses a request whose envelope ``deadline`` (wall-clock seconds)
# is not a number, or has passed, before it looks at the op: nothing is applied.
BAD_DEADLINES = [(raw, "bad_request") for raw in (
    "true", "false", '"1"', '"9999999999"', "[]", "[9999999999]", "{}", "NaN", "Infinity",
    "-Infinity", "1" + "0" * 5000, '"\\ud800"', "-1", "-1e999999", "1e999999")] + [
    (raw, "unavailable") for raw in ("0", "-0.0", "1.5", "1e-999999", "1700000000.25")]


def valid_value(check):
    """A value that passes ``check`` (the validators of protocol.py)."""
    if isinstance(check, Omittable):
        return valid_value(check.inner)
    if isinstance(check, IdempotencyKey):
        return "k" * 16
    if isinstance(check, Hex):  # hex text of bytes, as the frontends send
        return "ab" * check.size
    if isinstance(check, Str):
        return "k" * max(check.min_len, 1)
    if isinstance(check, Int):
        return check.low
    if isinstance(check, OneOf):
        return check.choices[0]
    if isinstance(check, Price):
        return 1
    if isinstance(check, Keywords):
        return ["kw"]
    if isinstance(check, Record):
        return {name: valid_value(inner) for name, inner in check.schema.items()}
    if isinstance(check, ListOf):
        return [valid_value(check.element)]
    raise TypeError(f"no valid value known for {check!r}: teach valid_value about it")


def field_paths(schema: dict, prefix: tuple = ()) -> list[tuple]:
    """Every field of ``schema`` as a path into args, nested records included."""
    paths = []
    for name, check in schema.items():
        path = prefix + (name,)
        paths.append(path)
        inner = check.inner if isinstance(check, Omittable) else check
        if isinstance(inner, (ListOf, Keywords)):
            path = path + (0,)
            paths.append(path)
            inner = inner.element if isinstance(inner, ListOf) else None
        if isinstance(inner, Record):
            paths += field_paths(inner.schema, path)
    return paths


def value_at(args, path: tuple):
    """The value at ``path``; a field left out of the valid args (a cursor) is a string."""
    for step in path:
        if isinstance(args, dict) and step not in args:
            return ""
        args = args[step]
    return args


def with_value(args, path: tuple, value):
    """A copy of ``args`` with the field at ``path`` set to ``value``."""
    args = json.loads(json.dumps(args))
    target = args
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return args


def request_line(op: str, args, session, request_id=None, raw: str | None = None,
                 deadline=None) -> bytes:
    """One request line; ``raw`` is JSON text spliced in where ``HOLE`` stands."""
    message = {"op": op, "args": args}
    if session is not None:
        message["session"] = session
    if request_id is not None:
        message["id"] = request_id
    if deadline is not None:
        message["deadline"] = deadline
    text = json.dumps(message, ensure_ascii=False)
    if raw is not None:
        assert json.dumps(HOLE) in text
        text = text.replace(json.dumps(HOLE), raw)
    return text.encode() + b"\n"


def expected_code(line: bytes, schema: dict) -> str | None:
    """The error code the line must get if its args are wrong, or None if they pass."""
    try:
        message = decode(line)
        validate(schema, message.get("args", {}))
    except ApiError as error:
        return error.code
    return None


def echoed_id(line: bytes):
    """The id a reply to ``line`` must carry; None if the line does not even parse."""
    try:
        return decode(line).get("id")
    except ApiError:
        return None


def check_reply(raw: bytes, line: bytes, where: str, expect: str | None = None,
                request_id=None) -> dict:
    """Assert the reply is one well-formed line, free of internals; return it parsed."""
    context = f"{where}, FUZZ_SEED={SEED}, request {line[:300]!r}"
    assert raw.endswith(b"\n"), f"no reply line ({raw[:200]!r}): {context}"
    assert b"Traceback" not in raw and b'File "' not in raw, f"{raw[:500]!r}: {context}"
    reply = json.loads(raw)
    assert isinstance(reply, dict) and reply.get("ok") in (True, False), f"{raw!r}: {context}"
    if not reply["ok"]:
        assert reply["error"]["code"] in CODES, f"{raw!r}: {context}"
        assert isinstance(reply["error"]["message"], str), f"{raw!r}: {context}"
    if expect is not None:
        assert not reply["ok"] and reply["error"]["code"] == expect, \
            f"expected {expect}, got {raw[:300]!r}: {context}"
    if request_id is not None:
        assert reply.get("id") == request_id, f"reply out of order {raw[:300]!r}: {context}"
    return reply


class World:
    """The valid state the fuzzing must leave alone, and ways to look at all of it."""

    def __init__(self, market) -> None:
        self.seller = market.seller()
        self.seller_id = self.seller.register("fuzz_seller")
        self.item_ids = [self.seller("RegisterItemForSale", name=f"thing {n}", category=5,
                                     keywords=["kw", f"k{n}"], condition="used",
                                     price=1.25 * n, quantity=10)["item_id"]
                         for n in range(1, 4)]
        self.buyer = market.buyer()
        self.buyer.register("fuzz_buyer")
        self.buyer("AddItemToCart", item_id=self.item_ids[0], quantity=2)
        self.buyer("MakePurchase", card_name="F", card_number="4111111111111111",
                   expiry="12/99")
        self.buyer("ProvideFeedback", item_id=self.item_ids[0], vote="up")
        self.buyer("AddItemToCart", item_id=self.item_ids[1], quantity=3)
        self.buyer("SaveCart")
        self.product = Client(market.product_db.address)
        self.customer = Client(market.customer_db.address)
        self.probes = 0
        self.addresses = {"product_db": market.product_db.address,
                          "customer_db": market.customer_db.address,
                          "seller": market.seller_server.address,
                          "buyer": market.buyer_server.address}
        self.tokens = {"seller": self.seller.session, "buyer": self.buyer.session}
        self.requests = {service: self.valid_requests(service) for service in SERVICES}

    def snapshot(self) -> dict:
        """Everything the fuzzing might disturb, through all four services."""
        return {
            "seller items": self.seller("DisplayItemsForSale"),
            "seller rating": self.seller("GetSellerRating"),
            "cart": self.buyer("DisplayCart"),
            "purchases": self.buyer("GetBuyerPurchases"),
            "rating seen by buyer": self.buyer("GetSellerRating", seller_id=self.seller_id),
            "every item": self.product.call("GetItems", {"item_ids": list(range(1, 200))}),
            "search": self.product.call("Search", {"category": 5, "keywords": [], "limit": 500}),
            "accounts created": self.account_ids_past_probes(),
        }

    def account_ids_past_probes(self) -> list[int]:
        """The next buyer and seller ids, minus the probe accounts made so far: any
        other account made in between shows up as a change."""
        self.probes += 1
        salt = os.urandom(16)
        credentials = {"salt": salt.hex(), "hash": scrypt("pw", salt, 10).hex(), "cost": 10}
        return [self.customer.call("CreateAccount", {"role": role, **credentials, **keyed(),
                                                     "username": f"probe{self.probes}{role}"}
                                   )["user_id"] - self.probes for role in ("buyer", "seller")]

    def valid_requests(self, service: str) -> dict[str, tuple[dict, str | None]]:
        """op -> (valid args, session) for every op of ``service``."""
        ops, role = SERVICES[service]
        requests = {}
        for op_name, op in ops.items():
            args = {name: valid_value(check) for name, check in op.schema.items()
                    if check is not CURSOR}  # a valid cursor names its list: left out
            validate(op.schema, args)
            requests[op_name] = (args, self.tokens[role] if op.needs_session else None)
        return requests

    def close(self) -> None:
        self.product.close()
        self.customer.close()


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """The databases keep data directories, so ids start at 1, as the values above assume
    (a memory-only database starts its ids at the time, to never reuse one). Its own, not
    conftest's: ``world`` needs those ids, for the whole module."""
    m = start_market(data_dir=tmp_path_factory.mktemp("fuzz-data"))
    yield m
    m.stop()


@pytest.fixture(scope="module")
def world(market):
    w = World(market)
    yield w
    w.close()


@pytest.fixture
def unchanged(world):
    """Asserts after the test that the snapshot is what it was before."""
    print(f"FUZZ_SEED={SEED}")
    before = world.snapshot()
    yield
    assert world.snapshot() == before, f"stored state changed (FUZZ_SEED={SEED})"


def constructed_cases(world: World, service: str) -> list[tuple[bytes, str]]:
    """(line, expected error code) for every wrong value of every field of every op."""
    ops, _ = SERVICES[service]
    cases = []
    for op_name, (args, session) in world.requests[service].items():
        schema = ops[op_name].schema
        for path in field_paths(schema):
            for raw in WRONG_TYPES[type(value_at(args, path))]:
                line = request_line(op_name, with_value(args, path, HOLE), session, raw=raw)
                assert expected_code(line, schema) == "bad_request", f"{op_name} {path}: {raw}"
                cases.append((line, "bad_request"))
            for raw in WRONG_VALUES:
                line = request_line(op_name, with_value(args, path, HOLE), session, raw=raw)
                code = expected_code(line, schema)
                if code is not None:
                    cases.append((line, code))
            if len(path) == 1 and not schema[path[0]].optional:
                missing = {k: v for k, v in args.items() if k != path[0]}
                cases.append((request_line(op_name, missing, session), "bad_request"))
        cases += [
            (request_line(op_name, {**args, "zzz": 1}, session), "bad_request"),
            (request_line(op_name, HOLE, session, raw="[]"), "bad_request"),
            (request_line(op_name, HOLE, session, raw='"args"'), "bad_request"),
            (request_line(op_name, args, HOLE, raw="7"), "bad_request"),
            (request_line(op_name, args, HOLE, raw='["token"]'), "bad_request"),
        ]
        cases += [(request_line(op_name, args, session, HOLE, raw), "bad_request")
                  for raw in BAD_IDS]
        if service in DATABASES:
            cases += [(request_line(op_name, args, session, raw=raw, deadline=HOLE), code)
                      for raw, code in BAD_DEADLINES]
        else:  # the deadline is for the databases only: a client may not send one
            cases.append((request_line(op_name, args, session, deadline=9_999_999_999),
                          "bad_request"))
        if ops[op_name].needs_session:
            cases += [(request_line(op_name, args, None), "invalid_session"),
                      (request_line(op_name, args, "no-such-token"), "invalid_session")]
    for op_name in ("NoSuchOp", "", " GetItem", "getitem", "x" * 1000, *(ALL_OPS - ops.keys())):
        cases.append((request_line(op_name, {}, None), "unknown_op"))
    return cases


def random_case(rng: random.Random, world: World, service: str) -> tuple[bytes, str | None]:
    """A random line and the error it must get (None: any reply but ``internal``)."""
    requests = world.requests[service]
    op_name = rng.choice(sorted(requests))
    args, session = requests[op_name]
    base = request_line(op_name, args, session, request_id=rng.choice([1, "é€𝄞", [1, {}]]))
    kind = rng.randrange(4)
    if kind == 0:  # random bytes
        line = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
        return line.replace(b"\n", b"") + b"\n", None
    if kind == 1:  # a valid request cut short: never a whole JSON object
        return base[:rng.randrange(len(base) - 1)] + b"\n", "bad_request"
    if kind == 2:  # a wrong value somewhere in a valid request
        schema = SERVICES[service][0][op_name].schema
        paths = field_paths(schema)
        if paths:
            path = rng.choice(paths)
            line = request_line(op_name, with_value(args, path, HOLE), session,
                                raw=rng.choice(WRONG_VALUES))
            return line, expected_code(line, schema)
    line = bytearray(base[:-1])  # a valid request with a few bytes changed
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(line) + 1)
        change = rng.randrange(3)
        if change == 0 and at < len(line):
            del line[at]
        elif change == 1 and at < len(line):
            line[at] = rng.randrange(256)
        else:
            line[at:at] = bytes([rng.randrange(256)])
    return bytes(line).replace(b"\n", b"") + b"\n", None


def might_write(line: bytes) -> bool:
    """True if the line could be a valid call of an op that changes state."""
    try:
        message = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    op_name = message.get("op") if isinstance(message, dict) else None
    return isinstance(op_name, str) and op_name in ALL_OPS - READ_OPS


def run_cases(world: World, service: str, cases: list[tuple[bytes, str | None]]) -> int:
    """Send each case on one connection and check its one reply; return the count sent."""
    conn = Wire(world.addresses[service], timeout=10)
    try:
        for line, expect in cases:
            check_reply(conn.exchange(line), line, service, expect)
    finally:
        conn.close()
    return len(cases)


def test_wrong_values_in_every_field_of_every_op(world, unchanged):
    sent = {service: run_cases(world, service, constructed_cases(world, service))
            for service in SERVICES}
    print("constructed cases per service:", sent)
    assert all(count > 100 for count in sent.values()), sent


def test_random_cases_in_batches(world):
    """Random, truncated and mutated lines; the state is checked after every batch."""
    print(f"FUZZ_SEED={SEED} FUZZ_CASES={RANDOM_CASES}")
    rng = random.Random(SEED)
    sent = skipped = 0
    for start in range(0, RANDOM_CASES, BATCH):
        before = world.snapshot()
        batch: dict[str, list] = {service: [] for service in SERVICES}
        for _ in range(min(BATCH, RANDOM_CASES - start)):
            service = rng.choice(sorted(SERVICES))
            line, expect = random_case(rng, world, service)
            if expect is None and might_write(line):
                skipped += 1
            else:
                batch[service].append((line, expect))
        for service, cases in batch.items():
            sent += run_cases(world, service, cases)
        assert world.snapshot() == before, f"stored state changed (FUZZ_SEED={SEED})"
    print(f"random cases sent: {sent}, skipped as possibly valid writes: {skipped}")
    assert sent >= RANDOM_CASES * 0.9


@pytest.mark.parametrize("service", SERVICES)
def test_deep_nesting_huge_numbers_and_constants(world, unchanged, service):
    read_op = {"product_db": "GetItem", "customer_db": "CheckSession",
               "seller": "DisplayItemsForSale", "buyer": "DisplayCart"}[service]
    args, session = world.requests[service][read_op]
    conn = Wire(world.addresses[service], timeout=10)
    bad = [b"[" * 100_000, b"{" * 100_000, b'{"op":' + b"[" * 100_000, b"1e999999", b"NaN",
           b'{"op":"GetItem","args":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
           b"[" * 100_000 + b"]" * 100_000, b"1" + b"0" * 5000, b'"' + b"\\ud800" * 1000 + b'"']
    for line in bad:
        check_reply(conn.exchange(line + b"\n"), line, service, "bad_request")
    for raw in BAD_IDS:
        line = request_line(read_op, args, session, HOLE, raw)
        check_reply(conn.exchange(line), line, service, "bad_request")
    for request_id in [[[[[[[1]]]]]], {"a": [1.5, None, "é"]}, 10 ** 300, -0.0, 1e300, "𝄞"]:
        line = request_line(read_op, args, session, request_id=request_id)
        reply = check_reply(conn.exchange(line), line, service)
        assert reply["ok"] and reply["id"] == request_id, reply
    conn.close()


@pytest.mark.parametrize("service", SERVICES)
def test_lines_just_under_and_over_one_mib(world, unchanged, service):
    read_op = {"product_db": "GetItem", "customer_db": "CheckSession",
               "seller": "DisplayItemsForSale", "buyer": "DisplayCart"}[service]
    args, session = world.requests[service][read_op]
    line = request_line(read_op, args, session, request_id=7)

    def padded(size: int) -> bytes:  # ``line`` with ``size`` bytes of JSON
        return line[:-2] + b" " * (size - len(line) + 1) + b"}\n"

    conn = Wire(world.addresses[service], timeout=10)
    for size in (MAX_LINE - 1, MAX_LINE):
        reply = check_reply(conn.exchange(padded(size)), line, service, request_id=7)
        assert reply["ok"], reply
    junk = b"x" * MAX_LINE + b"\n"
    check_reply(conn.exchange(junk), junk[:100], service, "bad_request")
    conn.close()
    for size in (MAX_LINE + 1, 3 * MAX_LINE):
        conn = Wire(world.addresses[service], timeout=10)
        try:
            raw = conn.exchange(padded(size))
        except (BrokenPipeError, ConnectionResetError):  # closed before all was sent
            raw = conn.read_line()
        check_reply(raw, line, service, "too_large")
        assert conn.is_closed(), "the connection should be closed after too_large"
        conn.close()


@pytest.mark.parametrize("service", SERVICES)
def test_many_requests_pipelined_on_one_connection(world, unchanged, service):
    """A mix of valid reads and bad requests in one write: one reply each, in order."""
    rng = random.Random(SEED)
    requests = world.requests[service]
    reads = sorted(op for op in requests if op in READ_OPS)
    bad = [case for case in constructed_cases(world, service) if b'"id"' not in case[0]]
    lines, expects, ids = [], [], []
    for request_id in range(2000):
        if rng.random() < 0.5:
            op_name = rng.choice(reads)
            line, expect = request_line(op_name, *requests[op_name]), None
        else:
            line, expect = rng.choice(bad)
        line = line[:-2] + b', "id": ' + str(request_id).encode() + b"}\n"
        lines.append(line)
        expects.append(expect)
        ids.append(echoed_id(line))
    conn = Wire(world.addresses[service], timeout=10)
    conn.write(b"".join(lines))
    for line, expect, request_id in zip(lines, expects, ids):
        check_reply(conn.read_line(), line, service, expect, request_id)
    probe = request_line("NoSuchOp", {}, None, request_id="last")
    check_reply(conn.exchange(probe), probe, service, "unknown_op", "last")
    conn.close()


@pytest.mark.parametrize("service", SERVICES)
def test_connections_closing_mid_line(world, unchanged, service):
    """Half a valid write, or all of it but the newline, is never applied."""
    rng = random.Random(SEED)
    requests = world.requests[service]
    writes = sorted(op for op in requests if op not in READ_OPS)
    for n in range(40):
        op_name = rng.choice(writes)
        args, session = requests[op_name]
        line = request_line(op_name, args, session)[:-1]
        conn = Wire(world.addresses[service], timeout=10)
        conn.write(line if n % 2 else line[:rng.randrange(1, len(line))])
        conn.close(reset=n % 4 == 0)
    probe = request_line("NoSuchOp", {}, None, request_id="alive")
    conn = Wire(world.addresses[service], timeout=10)
    check_reply(conn.exchange(probe), probe, service, "unknown_op", "alive")
    conn.close()


def test_values_the_validators_pass_never_get_internal(world):
    """A deadline integer too large for a float, and a salt or hash of the right length
    that is not hex, must be refused (or served), never answered with ``internal``."""
    cases = {"product_db": [request_line("Hello", {}, None, raw="9" * 4000, deadline=HOLE),
                            request_line("Hello", {}, None, raw="-" + "9" * 4000,
                                         deadline=HOLE)],
             "customer_db": [
                 request_line("Hello", {}, None, raw="9" * 4000, deadline=HOLE),
                 request_line("Login", {"role": "buyer", "username": "fuzz_buyer",
                                        "hash": "zz" * 32}, None),
                 request_line("CreateAccount", {"role": "seller", "username": "fuzz_not_hex",
                                                "salt": "zz" * 16, "hash": "ab" * 32,
                                                "cost": 10}, None)]}
    for service, lines in cases.items():
        run_cases(world, service, [(line, None) for line in lines])
