"""Ordered, bounded look-ahead over a thread pool: I/O and decoding overlap model compute."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Tally(Generic[R]):
    """What an :func:`ordered_prefetch` has under way: the loads still running and the weight loaded ahead.

    Kept by the futures' done-callbacks, so each step of the prefetch costs O(loaders) instead of a scan of
    every future in its window (a scan per item made a shard's look-ahead quadratic in the window).
    """

    def __init__(self, weight: Callable[[R], int] | None) -> None:
        self._weight = weight
        self._lock = threading.Lock()
        self._running: set[Future[R]] = set()
        self._weights: dict[Future[R], int] = {}
        self._taken: set[Future[R]] = set()
        self.loaded = 0

    def track(self, future: Future[R]) -> Future[R]:
        """Count ``future`` as running until it is done."""
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[R]) -> None:
        weight = 0
        try:
            if self._weight is not None and not future.cancelled() and future.exception() is None:
                weight = self._weight(future.result())
        finally:
            with self._lock:
                self._running.discard(future)
                if future in self._taken:  # handed out before this callback ran: never ahead
                    self._taken.discard(future)
                else:
                    self._weights[future] = weight
                    self.loaded += weight

    def running(self) -> list[Future[R]]:
        """The loads still under way (at most ``loaders`` and the one just submitted)."""
        with self._lock:
            return [f for f in self._running if not f.done()]

    def take(self, future: Future[R]) -> R:
        """``future``'s result, no longer counted as loaded ahead."""
        result = future.result()
        with self._lock:
            if future in self._weights:
                self.loaded -= self._weights.pop(future)
            else:
                self._taken.add(future)
        return result


def ordered_prefetch(
    pool: ThreadPoolExecutor,
    fn: Callable[[T], R],
    items: Iterable[T],
    window: int,
    *,
    weight: Callable[[R], int] | None = None,
    max_weight: int | None = None,
    loaders: int = 4,
) -> Iterator[R]:
    """Map ``fn`` over items in a thread pool, in order, with at most ``window`` results in flight.

    Bounded look-ahead lets decoding overlap model compute without holding a whole shard in memory. With
    ``weight`` and ``max_weight``, loading also pauses while the results loaded ahead weigh ``max_weight``, and
    at most ``loaders`` loads (the pool's threads) are under way at once, since their weight is known only when
    they finish: what is held ahead stays below ``max_weight`` plus ``loaders`` items, whatever the item sizes.
    """
    pending: deque[Future[R]] = deque()
    tally: _Tally[R] = _Tally(weight)
    for item in items:
        pending.append(tally.track(pool.submit(fn, item)))
        while pending:
            if len(pending) >= window:
                yield tally.take(pending.popleft())
                continue
            if max_weight is None:
                break
            running = tally.running()
            if len(running) >= loaders:
                wait(running, return_when=FIRST_COMPLETED)
                continue
            if tally.loaded < max_weight:
                break
            yield tally.take(pending.popleft())
    while pending:
        yield tally.take(pending.popleft())


def loaded_batches(
    pool: ThreadPoolExecutor,
    load: Callable[[T], tuple[str, R | str]],
    items: Iterable[T],
    batch_size: int,
    reject: Callable[[str, str], object],
    *,
    weight: Callable[[R], int] | None = None,
    max_weight: int | None = None,
    window: int | None = None,
    loaders: int = 4,
) -> Iterator[list[tuple[str, R]]]:
    """Load items ahead in the pool and yield them in batches; a loader's string result is a rejection reason.

    Args:
        pool: Threads that run ``load``.
        load: Returns ``(key, result)``, or ``(key, reason)`` for an item to reject.
        items: What to load, in order.
        batch_size: Most items per batch.
        reject: Called with ``(key, reason)`` for each rejected item.
        weight: Size of one loaded result (audio samples, bytes), for ``max_weight``.
        max_weight: A batch ends once its results weigh this much, even short of ``batch_size``: a batch of
            long items then holds no more memory than one of short ones (a single heavier item is one batch).
            Loading ahead also pauses at this weight.
        window: Most results loaded ahead of the consumer (default ``2 × batch_size``).
        loaders: The pool's threads: loads under way at once when ``max_weight`` is set.
    """

    def weigh(loaded: tuple[str, R | str]) -> int:
        result = loaded[1]
        return 0 if weight is None or isinstance(result, str) else weight(result)

    batch: list[tuple[str, R]] = []
    total = 0
    ahead = ordered_prefetch(
        pool, load, items, window or 2 * batch_size, weight=weigh, max_weight=max_weight, loaders=loaders
    )
    for key, result in ahead:
        if isinstance(result, str):
            reject(key, result)
            continue
        batch.append((key, result))
        total += weigh((key, result))
        if len(batch) == batch_size or (max_weight is not None and total >= max_weight):
            yield batch
            batch, total = [], 0
    if batch:
        yield batch
