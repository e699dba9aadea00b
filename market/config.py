"""Every default and limit of the marketplace, defined once (as httpx's ``_config.py``).

Plain values only, importing nothing: the validators of ``market.fields`` and
``market.paging``, the services' flags, the CLIs, ``market.ops.launch`` and the shell
scripts read them here. ``DEFAULT_*`` names what a flag or an environment variable
may override; the other names are fixed limits. The scripts ask for values with
``python3 -m market.config NAME...`` (one line, the values separated by spaces).
"""
from __future__ import annotations

import sys

# -- where the services listen ---------------------------------------------------
DEFAULT_HOST = "127.0.0.1"  # what a service binds and a client reaches unless told
DEFAULT_PRODUCT_DB_PORT = 9001
DEFAULT_CUSTOMER_DB_PORT = 9002
DEFAULT_SELLER_FRONTEND_PORT = 8001
DEFAULT_BUYER_FRONTEND_PORT = 8002
# REPLICATED=1 ./run_all.sh: the first etcd member's client port (etcd's own default); member
# N listens for clients on this + 2 (N - 1) and for its peers on the port after that.
DEFAULT_ETCD_PORT = 2379

# -- serving connections (every service) -------------------------------------------
DEFAULT_IDLE_TIMEOUT = 600.0  # seconds a connection may stay idle before it is closed
DEFAULT_READ_TIMEOUT = 30.0  # seconds a started request line (or a reply) may take
DEFAULT_MAX_CONNECTIONS = 1024  # connections served at once, one thread each
LISTEN_BACKLOG = 1024  # connection attempts queued (contract §6: bursts of 1,000)
DEFAULT_LOG_LEVEL = "INFO"

# -- starting and stopping a service ----------------------------------------------------
START_TIMEOUT = 30  # seconds a service may take to print its ready line (run_all.sh, tests)
DRAIN_TIMEOUT = 3.0  # seconds a stopping service gives the requests in flight to finish
STOP_GRACE = 5  # seconds between TERM and KILL (stop_all.sh, tests): more than DRAIN_TIMEOUT

# -- frontends and their databases ----------------------------------------------------
DEFAULT_DB_TIMEOUT = 5.0  # seconds a frontend waits for a database
DEFAULT_DB_POOL = 64  # connections a frontend keeps at most to each database
# A database must apply a request within this share of the frontend's wait; the rest leaves
# time for the reply to arrive before the frontend gives up.
DEADLINE_SHARE = 0.75
CLOCK_SKEW_WARNING = 1.0  # seconds a database's clock may be off before a frontend warns
SETTLE_BATCH = 1000  # ids per settling round trip (well under MAX_LINE)
DEFAULT_SETTLE_AFTER = 10  # seconds a reservation is held before the verdict is asked
HASH_COST_MIN, HASH_COST_MAX = 10, 20  # scrypt's n is 2 ** cost
DEFAULT_HASH_COST = 14  # ~50 ms and 16 MiB per hash

# -- the customer database ---------------------------------------------------------------
MAX_SESSIONS_PER_ACCOUNT = 100  # a login past it ends the account's least recently used
DEFAULT_SESSION_TIMEOUT = 300.0  # seconds a session lives without a request
DEFAULT_PURCHASE_TIMEOUT = 60.0  # seconds a started purchase waits for its commit

# -- copies: what a frontend answers itself while its lease holds (market.replication) -------
LEASE = 1.0  # seconds a frontend's copy stays in use after the poll behind it was sent
LONG_POLL_WAIT = 0.3  # seconds a frontend's Follow waits for changes before it is answered
FOLLOWER_FORGOTTEN = 60.0  # seconds after its lease ran out that a follower is forgotten
MAX_FOLLOWERS = 256  # followers one database keeps at once (each frontend is one per database)
SNAPSHOT_PAGE = 2000  # entries of a snapshot page at most (each page also under PAGE_BYTES)
# A session's check is answered from a frontend's copy for at most this share of the
# session timeout, and never longer than half a lease; the session counts as used meanwhile.
SESSION_CACHE_SHARE = 0.05

# -- how long the databases remember what a resend may ask about -----------------------
KEY_TTL = 600.0  # an idempotency key's outcome (contract §11: 10 minutes; --key-ttl)
# Clients' keys one account may have remembered at once (contract §11): at most ~0.8 KiB
# each, so one account holds at most ~8 MiB of a database's memory; at the default time to
# live, about 16 writes a second, sustained, with keys of its own. (A frontend's own keys,
# for writes sent without one, live FRONTEND_KEY_TTL and count toward no quota.)
KEY_QUOTA = 10_000
CLIENT_KEY_LENGTH = 64  # the longest idempotency key a client may send (contract §11)
FRONTEND_KEY_LENGTH = 72  # a frontend's own keys: longer than any client's
FRONTEND_KEY_TTL = 60.0  # the outcome of a frontend's own key (its one resend comes in seconds)
RESERVATION_TTL = 120.0  # a settled reservation
SNAPSHOT_EVERY = 100_000  # journal records between two snapshots of a data directory
CANCELLED_TTL = 120.0  # a cancelled purchase id

# -- databases replicated on etcd (contract §16) ---------------------------------------------
ETCD_TIMEOUT = 2.0  # seconds a database waits for one answer of etcd
ETCD_LEADER_TTL = 3  # seconds the active process's leadership lasts after its last renewal
ETCD_RENEW_EVERY = 0.5  # seconds between two renewals of it
# The active process answers only while its leadership is certain: until this long before
# the leadership it renewed last could run out (a follower's poll waiting for news fits).
ETCD_LEADER_MARGIN = 1.0
ETCD_COMMIT_DELAY = 0.002  # seconds a commit waits for more records while they keep coming
ETCD_RETRY_PAUSE = 0.1  # seconds between two tries of a transaction etcd did not answer
ETCD_LEADER_CHECK = 10.0  # seconds between two looks for etcd's raft leader
ETCD_CHUNK = 512 << 10  # bytes of a snapshot's chunk, under etcd's 1.5 MiB per request
ETCD_QUIET = 10.0  # seconds a standby's watch may stay quiet before it is renewed

# -- the contract's limits -----------------------------------------------------------
MAX_LINE = 1 << 20  # bytes of JSON on one line, not counting the newline
MAX_ECHO_DEPTH = 100  # nesting levels of a value echoed back (a request's ``id``)
PRICE_MAX_DOLLARS = 1_000_000
QUANTITY_MAX = 1_000_000  # units of one item
CART_MAX = 1000  # distinct items in one cart
PAGE_LIMIT_MAX, PAGE_LIMIT_DEFAULT = 500, 100  # entries of a paged list
SEARCH_LIMIT_MAX, SEARCH_LIMIT_DEFAULT = 500, 100  # matches of one search

# -- clients -------------------------------------------------------------------------------
CLI_TIMEOUT = 20.0  # seconds a CLI waits for a frontend: longer than its database timeouts
STATUS_TIMEOUT = 3.0  # seconds status.sh waits for a service's Stats

# -- encryption in transit (contract §14) ------------------------------------------------------
TLS_CERT_DAYS = 365  # days a certificate of make_certs.sh is valid (its --days)
TLS_COMPLAINT_EVERY = 60.0  # seconds between two WARNINGs of one kind of refused TLS client

# A card every check accepts (the well-known Visa test number): the buyer CLI fills
# the fields not asked yet with it to check one field alone; tests buy with it.
SAMPLE_CARD = {"card_name": "A Buyer", "card_number": "4111111111111111", "expiry": "12/99"}


def main(argv: list[str]) -> int:
    """``python3 -m market.config NAME...``: print the values on one line, separated by
    spaces (a float as its shortest text: 3.0 as 3), for the shell scripts."""
    names = [name for name in argv if name.isupper()]
    unknown = [name for name in argv if name not in names or name not in globals()]
    if unknown or not argv:
        print(f"usage: python3 -m market.config NAME...; unknown: {' '.join(unknown)}",
              file=sys.stderr)
        return 2
    values = (globals()[name] for name in names)
    print(" ".join(f"{value:g}" if isinstance(value, float) else str(value) for value in values))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
