"""The base of both databases.

    service      a request end to end: admit, the handler under one lock, changes as
                 records, the reply's wait for what it acknowledges (``propagate``)
    keyed        keyed writes: each key's first outcome, remembered, within a quota
    identity     the market a database belongs to
    persistence  loading a data directory and journaling every change
    replica      one database kept by several processes on etcd: standby, active, failover
    api          the internal ops both databases serve (Hello, ClaimMarket, Follow)
    main         a database's flags, and starting one
"""
