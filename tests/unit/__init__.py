"""Fast in-process unit tests (no services, no network).

This file makes ``tests/unit`` a package, so its modules (``unit.test_protocol``
...) do not clash with the same-named end-to-end tests in ``tests/``.
"""

import threading

from conftest import keyed  # noqa: F401  (the unit tests take it from here)


def in_thread(target, *args, **kwargs) -> threading.Thread:
    """``target(*args, **kwargs)`` running on a daemon thread of its own, started."""
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread
