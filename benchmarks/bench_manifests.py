"""Benchmark: building manifests (hash + full decode of every file) with 1 vs N threads, and the no-op rerun.

Run: ``.venv/bin/python -m benchmarks.bench_manifests [--images 1500]``. Prints ratios against the
single-thread build measured in the same run (absolute times on shared machines are noise).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from storage.manifests import build_manifests
from storage.sources.spec import CocoSpec
from storage.store import Store
from tests.tiny_datasets import coco_entry, write_coco


def _dataset(root: Path, count: int) -> CocoSpec:
    entries = [coco_entry(i + 1, ("train", "val", "test")[i % 3], [f"Caption {i}."]) for i in range(count)]
    write_coco(root, entries, speech=False, images=False)
    rng = np.random.default_rng(0)
    for entry in entries:
        pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)  # COCO-sized photos
        path = root / "COCO_2014" / entry["filepath"] / entry["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, "JPEG", quality=85)
    return CocoSpec(root=root)


def _timed(store: Store, spec: CocoSpec, workers: int) -> tuple[float, bool]:
    start = time.perf_counter()
    result = build_manifests(store, "coco", spec, shard_size=256, workers=workers)
    return time.perf_counter() - start, result.skipped


def main() -> None:
    """Run the benchmark and print the ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = _dataset(Path(tmp) / "coco", args.images)
        single, _ = _timed(Store(f"{tmp}/store-1"), spec, 1)
        threaded, _ = _timed(Store(f"{tmp}/store-n"), spec, args.workers)
        rerun, skipped = _timed(Store(f"{tmp}/store-n"), spec, args.workers)
    assert skipped, "the rerun on unchanged sources must be a no-op"
    print(f"images: {args.images} (640x480 JPEG)")
    print(f"baseline 1 thread: {single:.2f} s ({args.images / single:.0f} images/s)")
    print(f"{args.workers} threads: {threaded:.2f} s -> speed-up x{single / threaded:.2f}")
    print(f"no-op rerun: {rerun:.3f} s -> {rerun / single:.1%} of a full build")


if __name__ == "__main__":
    main()
