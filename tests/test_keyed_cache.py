"""The process-wide LRU that keeps manifest tables, decoded image-units shards and codebook indexes."""

from __future__ import annotations

import threading

import pytest

from storage.keyed_cache import KeyedCache


def test_values_are_made_once_and_the_least_recently_used_goes_first() -> None:
    made: list[str] = []
    cache: KeyedCache[str, str] = KeyedCache(2)

    def get(key: str) -> str:
        def make() -> str:
            made.append(key)
            return key.upper()

        return cache.get(key, make)

    assert [get("a"), get("b"), get("a")] == ["A", "B", "A"] and made == ["a", "b"]
    get("c")  # "b" was used least recently
    assert len(cache) == 2 and made == ["a", "b", "c"]
    get("a")
    get("b")
    assert made == ["a", "b", "c", "b"]
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="at least one"):
        KeyedCache(0)


def test_threads_share_one_cache() -> None:
    cache: KeyedCache[int, int] = KeyedCache(8)
    results: list[int] = []

    def work() -> None:
        for key in range(8):
            results.append(cache.get(key, lambda k=key: k * k))  # type: ignore[misc]

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted([k * k for k in range(8)] * 4) and len(cache) == 8
