"""The base of both frontends, and what they do across both databases.

    service    the base: account ops, the session check, keyed writes, the two copies
    passwords  scrypt, queued fairly, one hash per core
    checkout   a purchase and a vote, step by step through both databases
    settling   finishing purchases and votes by the deciding database's verdict
    identity   whether the two databases belong to one market; clock offsets
    main       a frontend's flags, and starting one
"""
