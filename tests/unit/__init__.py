"""Fast in-process unit tests (no services, no network).

This file makes ``tests/unit`` a package, so its modules (``unit.test_protocol``
...) do not clash with the same-named end-to-end tests in ``tests/``.
"""

from conftest import keyed  # noqa: F401  (the unit tests take it from here)
