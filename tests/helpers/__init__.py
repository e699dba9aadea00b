"""What the tests share, in one place; test modules import from here, never from each
other or from ``conftest.py`` (which holds only fixtures, built on these).
``tests/unit/test_test_layout.py`` checks it.

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so a test in ``tests/`` or in
``tests/unit/`` writes ``from helpers.market import listing``.

    market     a marketplace of real processes (``Market``, ``start_market``,
               ``start_logged``), its clients (``Api``), and small helpers: ``listing``,
               ``units``, ``failure``, ``at_once``, ``every_page``, ``wait_until``,
               ``stall``, ``sigstop``, ``keyed``, ``unique_name``, ``CARD``, ``ROOT``
    wire       ``Wire``: the one raw wire client (bytes over a plain socket), and
               ``line_of``
    proxy      ``ReplyDropper``: a line proxy that loses chosen replies; ``Recorder``: a
               byte proxy that keeps a copy of all it passes (TLS included)
    identity   which market a database belongs to (``market_of``), and a request refused
               for a mismatched pair (``refused``, ``MISMATCH``)
    inprocess  a database object called in this process (``dispatch``, ``ask``,
               ``call``, ``signed_up``, ``SALT``/``HASH``), and ``in_thread``
    cli        the CLIs driven through pipes and pseudo-terminals (``cli``,
               ``Conversation``, ``Terminal``, ``ok``, ``row``, ``free_port``, ...)
    scripts    run_all.sh, stop_all.sh and status.sh in a run directory of their own
               (``script``, ``run_env``, ``free_ports``, ``running``, ``SERVICES``)
    tls        certificates (``make_certs``, ``signed_cert``: another CA's, an expired
               one), the services' flags (``tls_flags``), a market serving TLS only
               (``start_tls_market``, ``logged_frontend``), its clients (``tls_api``), and
               what a handshake shows (``peer_serial``, ``handshake_error``)
"""
