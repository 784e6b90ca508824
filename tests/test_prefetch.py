"""Bounded look-ahead: order kept, rejections reported, batches and read-ahead bounded by count and by weight."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tasks.prefetch import loaded_batches


class InlinePool(ThreadPoolExecutor):
    """Runs each task at submit time, so how far loading runs ahead is exact (no thread timing)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _loader(started: list[str]) -> Callable[[tuple[str, int]], tuple[str, list[int] | str]]:
    def load(item: tuple[str, int]) -> tuple[str, list[int] | str]:
        key, size = item
        started.append(key)
        return (key, "unreadable") if size < 0 else (key, [0] * size)

    return load


def test_batches_keep_order_report_rejections_and_end_at_the_count() -> None:
    items = [(f"k{i}", -1 if i == 3 else 1) for i in range(7)]
    rejected: list[tuple[str, str]] = []
    with ThreadPoolExecutor(2) as pool:
        batches = list(loaded_batches(pool, _loader([]), items, 2, lambda k, r: rejected.append((k, r))))
    assert [[key for key, _ in batch] for batch in batches] == [["k0", "k1"], ["k2", "k4"], ["k5", "k6"]]
    assert rejected == [("k3", "unreadable")]


def test_heavy_items_end_a_batch_early_and_pause_loading_ahead() -> None:
    sizes = [10, 10, 10, 50, 5, 5, 100, 1]
    items = [(f"k{i}", size) for i, size in enumerate(sizes)]
    started: list[str] = []
    ahead: list[int] = []
    batches: list[list[tuple[str, list[int]]]] = []
    batched = loaded_batches(InlinePool(), _loader(started), items, 8, print, weight=len, max_weight=20, window=8)
    for batch in batched:
        consumed = sum(len(b) for b in batches) + len(batch)
        ahead.append(len(started) - consumed)
        batches.append(batch)
    assert [[len(sample) for _, sample in batch] for batch in batches] == [[10, 10], [10, 50], [5, 5, 100], [1]]
    # Without a weight limit the loader would run 8 items ahead; with it, loading stops once 20 are loaded.
    assert max(ahead) <= 2, ahead
    unbounded = loaded_batches(InlinePool(), _loader(started := []), items, 8, print, window=8)
    assert [len(batch) for batch in unbounded] == [8] and len(started) == 8


def test_a_real_pool_stops_loading_ahead_at_the_weight() -> None:
    import threading
    import time

    started: list[str] = []
    lock = threading.Lock()

    def load(item: tuple[str, int]) -> tuple[str, list[int]]:
        time.sleep(0.002)
        with lock:
            started.append(item[0])
        return item[0], [0] * item[1]

    items = [(f"k{i}", 10) for i in range(60)]
    ahead, consumed = [], 0
    with ThreadPoolExecutor(3) as pool:
        for batch in loaded_batches(pool, load, items, 64, print, weight=len, max_weight=30, window=64, loaders=3):
            time.sleep(0.01)  # a slow consumer: an unbounded loader would run the whole window ahead
            consumed += len(batch)
            with lock:
                ahead.append(len(started) - consumed)
    assert consumed == 60
    # Loaded ahead: below 30 (at most 2 items of 10) plus the 3 loads under way, never the window of 64.
    assert max(ahead) <= 2 + 3, ahead
