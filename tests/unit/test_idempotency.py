"""KeyedOutcomes: first outcome kept, reuse for another request refused, expiry in order, a
quota of clients' keys per account; keys and fingerprints as the frontends make them."""
import pytest

from market.config import FRONTEND_KEY_LENGTH
from market.database.keyed import KeyedOutcomes
from market.frontend.service import Frontend
from market.keys import (
    IDEMPOTENCY_KEY,
    KEYED_ARGS,
    OWN_KEY_FINGERPRINT,
    card_print,
    fingerprint,
    fresh_key,
    frontend_key,
    is_frontends,
    read_vote_key,
    vote_key,
)
from market.net.service import Request
from protocol import ApiError

KEY = "k" * 16


def entry(scope: str, key: str, fingerprint: str, at: float) -> dict:
    """What a keyed record carries of its key."""
    return {"scope": scope, "key": key, "fingerprint": fingerprint, "at": at}


def test_a_new_key_is_unknown_then_replays_its_result():
    outcomes = KeyedOutcomes()
    print_ = fingerprint("AddItemToCart", {"item_id": 1, "quantity": 2})
    assert outcomes.find("buyer:1", KEY, print_) is None
    outcomes.remember(entry("buyer:1", KEY, print_, 100.0), result={"cart": [[1, 2]]})
    assert outcomes.find("buyer:1", KEY, print_).replay() == {"cart": [[1, 2]]}


def test_a_final_error_is_replayed_as_the_same_error():
    outcomes = KeyedOutcomes()
    outcomes.remember(entry("buyer:1", KEY, "p", 1.0), error=("conflict", "Not enough units."))
    with pytest.raises(ApiError) as caught:
        outcomes.find("buyer:1", KEY, "p").replay()
    assert (caught.value.code, caught.value.message) == ("conflict", "Not enough units.")


def test_the_same_key_for_another_request_is_conflict_and_scopes_are_apart():
    outcomes = KeyedOutcomes()
    outcomes.remember(entry("buyer:1", KEY, "first", 1.0), result={})
    with pytest.raises(ApiError) as caught:
        outcomes.find("buyer:1", KEY, "second")
    assert caught.value.code == "conflict"
    assert outcomes.find("buyer:2", KEY, "second") is None


def test_fingerprints_differ_by_op_and_args_not_by_key_order():
    assert fingerprint("A", {"x": 1, "y": 2}) == fingerprint("A", {"y": 2, "x": 1})
    assert fingerprint("A", {"x": 1}) != fingerprint("B", {"x": 1})
    assert fingerprint("A", {"x": 1}) != fingerprint("A", {"x": 2})


def test_entries_expire_oldest_first_and_survive_dump_and_restore():
    outcomes = KeyedOutcomes(ttl=10)
    for n in range(5):
        outcomes.remember(entry("s", f"{n:016d}", "p", float(n)), result={"n": n})
    assert outcomes.forget_expired(now=12.5) == 3
    copy = KeyedOutcomes(ttl=10)
    copy.restore(outcomes.dump())
    assert [copy.find("s", f"{n:016d}", "p").replay() for n in (3, 4)] == [{"n": 3}, {"n": 4}]
    assert copy.find("s", f"{0:016d}", "p") is None


@pytest.mark.parametrize("key", ["a" * 15, "a" * 65, "a" * 15 + "!", "ä" * 16, 12345678901234567,
                                 None])
def test_bad_keys_are_refused(key):
    with pytest.raises(ApiError) as caught:
        IDEMPOTENCY_KEY("idempotency_key", key)
    assert caught.value.code == "bad_request"


def test_good_keys_pass():
    assert IDEMPOTENCY_KEY("k", "A-z_0" * 4) == "A-z_0" * 4


def test_a_frontends_own_keys_are_longer_than_any_clients_and_kept_for_less_time():
    """Review finding: keys frontends made for unkeyed writes were kept 10 minutes, though
    only the frontend's own resend, seconds later, can use them."""
    own = frontend_key()
    assert len(own) == FRONTEND_KEY_LENGTH and is_frontends(own)
    with pytest.raises(ApiError):
        IDEMPOTENCY_KEY("idempotency_key", own)  # a client cannot send one
    assert KEYED_ARGS["key"]("key", own) == own and not is_frontends(fresh_key())
    outcomes = KeyedOutcomes(ttl=600, frontend_ttl=60)
    outcomes.remember(entry("s", own, "p", 0.0), result={})
    outcomes.remember(entry("s", KEY, "p", 0.0), result={})
    assert outcomes.forget_expired(now=100.0) == 1
    assert outcomes.find("s", own, "p") is None and outcomes.find("s", KEY, "p") is not None
    copy = KeyedOutcomes(ttl=600, frontend_ttl=60)
    copy.restore(outcomes.dump())
    assert copy.dump() == outcomes.dump()


def test_a_frontends_write_carries_the_clients_key_and_print_else_its_own_key():
    args = {"item_id": 1, "quantity": 2}
    theirs = Frontend.keyed(Request("AddItemToCart", "s", idempotency_key=KEY), args)
    assert theirs == {"key": KEY, "fingerprint": fingerprint("AddItemToCart", args)}
    first, second = (Frontend.keyed(Request("AddItemToCart", "s"), args) for _ in range(2))
    assert is_frontends(first["key"]) and first["key"] != second["key"]
    assert first["fingerprint"] == second["fingerprint"] == OWN_KEY_FINGERPRINT
    assert KEYED_ARGS["fingerprint"]("fingerprint", OWN_KEY_FINGERPRINT) == OWN_KEY_FINGERPRINT


def test_past_its_quota_an_account_may_not_remember_more_clients_keys():
    outcomes = KeyedOutcomes(ttl=10, quota=3)
    for n in range(3):
        outcomes.check_quota("buyer:1", f"{n:016d}")
        outcomes.remember(entry("buyer:1", f"{n:016d}", "p", float(n)), result={})
    with pytest.raises(ApiError) as caught:
        outcomes.check_quota("buyer:1", "3" * 16)
    assert caught.value.code == "resource_exhausted" and outcomes.over_quota == 1
    outcomes.check_quota("buyer:2", "3" * 16)  # another account's quota is its own
    outcomes.check_quota("buyer:1", frontend_key())  # a frontend's own keys count for none
    outcomes.forget_expired(now=10.5)  # the first key's time is up: room for one more
    outcomes.check_quota("buyer:1", "3" * 16)
    assert outcomes.stats() == {"remembered": 2, "clients": 2, "quota": 3, "over_quota": 1}


def test_a_card_is_fingerprinted_by_a_keyed_hash_of_the_whole_number():
    first = card_print(b"s" * 32, "4111111111111111")
    assert first == card_print(b"s" * 32, "4111111111111111") and len(first) == 32
    assert first != card_print(b"s" * 32, "4111111111101111")  # the same last four
    assert first != card_print(b"t" * 32, "4111111111111111")
    assert "4111111111111111" not in first


def test_a_vote_key_names_the_buyer_the_item_and_the_attempt():
    assert read_vote_key(vote_key(7, 42, 1)) == (7, 42, 1)
    for other in ("format-1:2:3", "a" * 32, "1.2", "1.2.3.4", "1.x.3", "-1.2.3", "1.2.٣"):
        assert read_vote_key(other) is None
