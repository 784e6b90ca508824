"""Look-ahead bookkeeping cost: ``ordered_prefetch`` against a bare ``pool.map`` over the same trivial loads.

A load that costs nothing leaves only the prefetch's own work per item: what caps a fast consumer (a GPU
batch of 64 utterances every few milliseconds) at a window of 512 weighed items, as the speech tasks use.

Run: ``.venv/bin/python -m benchmarks.bench_prefetch [--items 20000] [--window 512]``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from tasks.prefetch import ordered_prefetch


def _load(item: int) -> bytes:
    return b"x" * (100 + item % 7)


def main() -> None:
    """Print items per second of both, and their ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()
    with ThreadPoolExecutor(4) as pool:
        start = time.perf_counter()
        bare = sum(1 for _ in pool.map(_load, range(args.items)))
        bare_rate = bare / (time.perf_counter() - start)
        start = time.perf_counter()
        ahead = ordered_prefetch(pool, _load, range(args.items), args.window, weight=len, max_weight=10**12)
        ours = sum(1 for _ in ahead)
        our_rate = ours / (time.perf_counter() - start)
    print(
        f"pool.map {bare_rate:,.0f} items/s; ordered_prefetch (window {args.window}, weighed) {our_rate:,.0f} "
        f"items/s: ×{our_rate / bare_rate:.2f}"
    )


if __name__ == "__main__":
    main()
