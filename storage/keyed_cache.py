"""One process-wide, thread-safe LRU of values by key: what a process keeps of data that never changes under a key.

Used where a flow's tasks read the same immutable thing many times: manifest tables (a committed manifest
version never changes), decoded image-units shards (keyed by the commit marker they were read under) and a speech
codebook's faiss index (keyed by codebook id). A value is made outside the lock, so two threads asking for a
missing key at once may both make it; the last one made is kept — both are the same data.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class KeyedCache(Generic[K, V]):
    """At most ``size`` values, the least recently used dropped first.

    Args:
        size: How many values are kept (≥ 1).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a cache keeps at least one value, got size {size}")
        self.size = size
        self._values: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for ``key``, or ``make()`` kept and returned."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = make()
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)
