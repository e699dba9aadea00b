"""``Recent``: keys remembered for a while after they were added (bounded bookkeeping, such
as a cancelled purchase's id: its size follows the rate of additions, not the age of the
process)."""
from __future__ import annotations

import collections
import time
from typing import Any


class Recent:
    """Keys remembered for ``ttl`` seconds after they were added.

    Not thread-safe: use it under its owner's lock.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._added: collections.OrderedDict[str, tuple[float, Any]] = collections.OrderedDict()

    def put(self, key: str, value: Any = True) -> None:
        now = time.monotonic()
        self._added.pop(key, None)
        self._added[key] = (now, value)
        while self._added:
            oldest_key, (added, _) = next(iter(self._added.items()))
            if now - added <= self.ttl:
                break
            del self._added[oldest_key]

    def get(self, key: str, default: Any = None) -> Any:
        entry = self._added.get(key)
        return default if entry is None else entry[1]

    def __contains__(self, key: str) -> bool:
        return key in self._added

    def __len__(self) -> int:
        return len(self._added)

    def items(self) -> list[tuple[str, Any]]:
        return [(key, value) for key, (_, value) in self._added.items()]
