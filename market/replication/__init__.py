"""The one lease-and-push core: a database pushes every change of the data frontends
follow, and a frontend answers reads from its copy while its lease holds.

    feed      the database's side: numbered changes, followers' leases, the waits
    follower  the frontend's side: one long poll per database, keeping a copy current
"""
