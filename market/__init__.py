"""The marketplace's shared machinery, a package per concern; the top-level scripts
(``product_db.py``, ``customer_db.py``, ``seller_server.py``, ``buyer_server.py``,
``seller_client.py``, ``buyer_client.py``) are the entry points.

    config       every default and limit, defined once
    errors       every exception, and how each error code is treated
    fields       the contract's fields as validators; money, cards, names
    keys         idempotency keys: made, checked, fingerprinted; vote keys
    paging       opaque cursors and pages bounded in count and bytes
    recent       keys remembered for a while (bounded bookkeeping)
    net/         sockets, the server and its op table, the pooled client, flags, TLS
    storage/     a data directory: its journal, snapshots and formats
    replication/  the lease-and-push core: change feeds, and the copies that follow them
    database/    the base of both databases: changes, waits, keys, identity, persistence
    customer/    the customer database's data and internal API, and a frontend's copy of it
    product/     the product database's data and internal API; the catalog
    frontend/    the base of both frontends, passwords, checkout, settling, identity
    cli/         the CLIs' framework: the shell, commands, prompts, views, the client
    ops/         starting services and reading their ready lines; status.sh

Imports run one way: entry points -> frontend, database -> customer, product, replication,
storage, net -> config, errors, fields, keys, paging, recent -> ``protocol`` (the wire).
The benchmark (``performance.py``) has its own package beside this one, ``bench``.
"""
