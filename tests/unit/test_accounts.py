"""market/accounts.py and CustomerDB's sessions: names, hashes, expiry, the per-account cap."""
from __future__ import annotations

from helpers.inprocess import (
    HASH,
    SALT,
    code_of,
    create_account,
    dispatch,
    log_in,
    stored_account,
)

import customer_db
from market.customer.accounts import Accounts, Role, Sessions
from protocol import ApiError

# -- Accounts -------------------------------------------------------------------------

def test_names_are_unique_per_role_and_ids_never_repeat():
    accounts = Accounts(first_id=5)
    assert accounts.new_id(Role.BUYER, "ann") == 5
    accounts.add(Role.BUYER, stored_account(5, "ann"))
    assert code_of(accounts.new_id, Role.BUYER, "ann") == "conflict"
    assert accounts.new_id(Role.SELLER, "ann") == 5  # the other role has its own names and ids
    accounts.add(Role.BUYER, stored_account(9, "bob"))  # a replayed record may jump ahead
    assert accounts.new_id(Role.BUYER, "cy") == 10
    assert len(accounts) == 2 and accounts.get(Role.BUYER, 9).name == "bob"
    again = Accounts()
    again.restore(accounts.dump())
    assert again.dump() == accounts.dump() and again.new_id(Role.BUYER, "cy") == 10


def test_verify_refuses_a_wrong_hash_and_an_unknown_name_alike():
    accounts = Accounts()
    accounts.add(Role.SELLER, stored_account(1, "sam"))
    assert accounts.verify(Role.SELLER, "sam", bytes.fromhex(HASH)).user_id == 1
    assert code_of(accounts.verify, Role.SELLER, "sam", bytes(32)) == "auth_failed"
    assert code_of(accounts.verify, Role.SELLER, "nobody", bytes.fromhex(HASH)) == "auth_failed"
    assert code_of(accounts.verify, Role.BUYER, "sam", bytes.fromhex(HASH)) == "auth_failed"


def test_an_unknown_name_gets_the_same_made_up_salt_each_time_and_no_cost():
    accounts = Accounts()
    accounts.add(Role.BUYER, stored_account(1, "ann"))
    assert accounts.salt(Role.BUYER, "ann") == {"salt": SALT, "cost": 10}
    made_up = accounts.salt(Role.BUYER, "ghost")
    assert made_up["cost"] is None and len(bytes.fromhex(made_up["salt"])) == 16
    assert accounts.salt(Role.BUYER, "ghost") == made_up != accounts.salt(Role.BUYER, "ghost2")


# -- Sessions -------------------------------------------------------------------------

def test_sessions_expire_after_the_timeout_unless_used():
    sessions = Sessions(timeout=10)
    sessions.begin("a", Role.BUYER, 1, now=0)
    sessions.begin("b", Role.BUYER, 2, now=0)
    sessions.touch(sessions.get("a", Role.BUYER), now=8)
    assert sessions.idle(now=10) == []
    assert sessions.idle(now=10.5) == ["b"]
    assert not sessions.expired(sessions.get("a", Role.BUYER), now=18)
    assert sessions.expired(sessions.get("a", Role.BUYER), now=18.5)
    assert code_of(sessions.get, "a", Role.SELLER) == "invalid_session"  # role scoped
    sessions.end("b")
    assert code_of(sessions.get, "b", Role.BUYER) == "invalid_session"
    assert code_of(sessions.get, None, Role.BUYER) == "invalid_session"


def test_an_account_at_its_cap_names_its_least_recently_used_session():
    sessions = Sessions(timeout=100, per_account=3)
    for n, token in enumerate("abc"):
        sessions.begin(token, Role.SELLER, 7, now=n)
    sessions.begin("other", Role.SELLER, 8, now=3)
    sessions.touch(sessions.get("a", Role.SELLER), now=4)  # "b" is now the least recent
    assert sessions.least_recent_over_cap(Role.SELLER, 7) == "b"
    assert sessions.least_recent_over_cap(Role.SELLER, 8) is None
    assert sessions.least_recent_over_cap(Role.BUYER, 7) is None
    sessions.end("b")
    assert sessions.least_recent_over_cap(Role.SELLER, 7) is None
    assert sessions.of_account(Role.SELLER, 7) == ["c", "a"]


def test_sessions_restore_in_order_of_last_use():
    sessions = Sessions(timeout=100, per_account=2)
    sessions.begin("a", Role.BUYER, 1, now=0)
    sessions.begin("b", Role.BUYER, 1, now=1)
    sessions.touch(sessions.get("a", Role.BUYER), now=2)
    again = Sessions(timeout=100, per_account=2)
    again.restore(sessions.dump(), now=50)
    assert again.of_account(Role.BUYER, 1) == ["b", "a"]
    assert again.least_recent_over_cap(Role.BUYER, 1) == "b"


# -- the cap through CustomerDB, journaled ------------------------------------------------

def valid(db: customer_db.CustomerDB, token: str, role: str = "buyer") -> bool:
    try:
        dispatch(db, "CheckSession", token, role=role)
    except ApiError as error:
        assert error.code == "invalid_session"
        return False
    return True


def test_a_login_past_the_cap_ends_the_least_recently_used_session_for_good(tmp_path):
    db = customer_db.CustomerDB()
    db.open_data_dir(str(tmp_path))
    db.data.sessions.per_account = 5
    create_account(db, "buyer", "ann")
    create_account(db, "buyer", "bob")
    tokens = [log_in(db, "buyer", "ann") for _ in range(5)]
    bob = log_in(db, "buyer", "bob")
    assert valid(db, tokens[0])  # using the first makes the second the least recent
    sixth = log_in(db, "buyer", "ann")
    assert [valid(db, token) for token in tokens] == [True, False, True, True, True]
    assert valid(db, sixth) and valid(db, bob)
    assert len(db.data.sessions) == 6

    again = customer_db.CustomerDB()
    again.open_data_dir(str(tmp_path))
    assert [valid(again, token) for token in tokens] == [True, False, True, True, True]
    assert valid(again, sixth) and valid(again, bob)


def test_data_stats_counts_accounts_and_live_sessions():
    db = customer_db.CustomerDB()
    create_account(db, "buyer", "ann")
    create_account(db, "seller", "sam")
    log_in(db, "buyer", "ann")
    log_in(db, "seller", "sam")
    token = log_in(db, "seller", "sam")
    dispatch(db, "Logout", token, role="seller")
    assert db.data.stats() == {"accounts": 2, "live_sessions": 2, "purchases": 0,
                               "pending_purchases": 0}
