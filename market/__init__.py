"""The marketplace's shared machinery, one concern per module.

Imports run one way: the entry points at the top level -> ``market`` -> ``protocol``.

    config        every default and limit, defined once
    fields        the contract's fields as validators, money, card rules
    paging        opaque cursors and pages bounded in count and bytes
    sockets       kernel socket timeouts, reading request lines
    server        op tables, dispatch, the threaded TCP server, service flags, serve
    stats         what Stats counts: requests per op and outcome, recent latency
    client        pooled persistent connections (frontends -> databases, CLIs -> frontends)
    dbapi         how an internal op (frontend -> database) is declared
    customer_api  the customer database's internal ops
    product_api   the product database's internal ops
    idempotency   idempotency keys, step keys, the first outcome of each keyed write
    database      the base of both databases: lock, deadlines, secret, change and apply
    journal       the journal and snapshots of a database with --data-dir
    formats       a data directory's format: the marker, older formats, their upgrades
    identity      whether a frontend's two databases belong to one market; clock offsets
    feed          change feeds: a database's changes pushed to the frontends' copies, leased
    ratings       sellers' ratings as clients see them, and a frontend's copy of them
    accounts      the customer database's accounts and sessions
    leases        session leases: frontends answer session checks, the customer database revokes
    carts         the customer database's carts and saved carts, the cap
    purchases     the customer database's purchase state machine and histories
    votes         the customer side of votes: recorded, then counted or refused; thumbs
    catalog       the items, their keyword index and reads (the product database, copies)
    reservations  the units each purchase holds in the product database
    item_votes    the product side of votes: each vote key's verdict, items' thumbs
    frontend      the base of both frontends: accounts, password hashing, copies
    settling      finishing purchases and votes by the deciding database's verdict
    cliclient     how a CLI reaches its frontends: the Hello check, several frontends
    commands      a CLI command's values: read, checked, refused in the prompt's words; the menu
    prompts       a CLI at a terminal: questions, y/n, Tab completion, history
    shell         the CLI framework: the loop, the session and its hooks, cli_main
    views         how the CLIs show money, tables, items
    launch        starting services as processes and reading their ready lines
    status        what status.sh prints: each service's Stats

The benchmark (``performance.py``) has its own package beside this one, ``bench``.
"""
