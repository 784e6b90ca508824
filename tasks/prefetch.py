"""Ordered, bounded look-ahead over a thread pool: I/O and decoding overlap model compute."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_prefetch(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int) -> Iterator[R]:
    """Map ``fn`` over items in a thread pool, in order, with at most ``window`` results in flight.

    Bounded look-ahead lets decoding overlap model compute without holding a whole shard in memory.
    """
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def loaded_batches(
    pool: ThreadPoolExecutor,
    load: Callable[[T], tuple[str, R | str]],
    items: Iterable[T],
    batch_size: int,
    reject: Callable[[str, str], object],
) -> Iterator[list[tuple[str, R]]]:
    """Load items ahead in the pool and yield them in batches; a loader's string result is a rejection reason."""
    batch: list[tuple[str, R]] = []
    for key, result in ordered_prefetch(pool, load, items, 2 * batch_size):
        if isinstance(result, str):
            reject(key, result)
            continue
        batch.append((key, result))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
