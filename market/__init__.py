"""The marketplace's shared machinery, one concern per module.

Imports run one way: the entry points at the top level -> ``market`` -> ``protocol``.

    fields      the contract's fields and limits, money, card rules
    sockets     kernel socket timeouts, reading request lines
    server      op tables, dispatch, the threaded TCP server, service flags, serve
    paging      opaque cursors and pages bounded in count and bytes
    client      pooled persistent connections (frontends -> databases, CLIs -> frontends)
    journal     the journal and snapshots of a database with --data-dir
    formats     a data directory's format: the marker, older formats, their upgrades
    database    the base of both databases: lock, deadlines, secret, bookkeeping
    frontend    the base of both frontends: accounts, password hashing
    views       how the CLIs show money, tables, items
    cliclient   how a CLI reaches its frontends: the Hello check, several frontends
    commands    a CLI command's values: read, checked, refused in the prompt's words; the menu
    prompts     a CLI at a terminal: questions, y/n, Tab completion, history
    shell       the CLI framework: the loop, the session and its hooks, cli_main
    launch      starting services as processes and reading their ready lines

The benchmark (``performance.py``) has its own package beside this one, ``bench``.
"""
