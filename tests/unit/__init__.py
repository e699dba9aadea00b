"""Fast in-process unit tests (no services, no network).

This file makes ``tests/unit`` a package, so its modules (``unit.test_protocol``
...) do not clash with the same-named end-to-end tests in ``tests/``. What the unit
tests share is in ``tests/helpers`` (``helpers.inprocess``).
"""
