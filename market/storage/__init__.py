"""A database's data on disk (``--data-dir``).

    journal   the journal (one JSON line per change, group commit) and snapshots
    formats   a data directory's format: the marker, older formats and their upgrades
    etcd      a client of etcd's JSON gateway (keys, transactions, leases, watches)
    etcdlog   the journal kept in etcd instead: batches, snapshots, the leader's appends
"""
