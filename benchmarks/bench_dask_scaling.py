"""G1/G2: tokenize-images on Dask with 2 worker processes vs 1, on the CPU-bound vit-vqgan path.

The ViT-VQGAN base architecture with random weights (same cost as trained ones) tokenizes COCO-layout 640×480
JPEGs. Each Dask worker is one process with one thread (Dask sets OMP/MKL threads to 1 in its workers), so
the ratio measures what a second worker adds; each worker's threads are pinned to its own core (worker i →
core i; ``--no-pin`` to leave them free). G1 runs on clusters started before the clock starts, as a production
cluster is long-lived (``runner.address``); the timed flow still pays each worker's model load.
``--compare-runners`` adds the cold start (a LocalCluster the flow starts itself) and the thread runner.
Every run writes its own store from the same dataset; the image-unit stores are compared by content (G2).
Run: ``.venv/bin/python -m benchmarks.bench_dask_scaling [--images 48]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")


def _dataset(root: Path, images: int) -> None:
    """A Karpathy COCO layout (images only) of random 640×480 JPEGs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    entries = []
    for i in range(1, images + 1):
        name = f"COCO_train2014_{i:012d}.jpg"
        path = root / "COCO_2014" / "train2014" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path, "JPEG", quality=90)
        sentence = {"tokens": ["a"], "raw": "A photo.", "imgid": i, "sentid": i}
        entries.append(
            {
                "filepath": "train2014",
                "filename": name,
                "imgid": i,
                "split": "train",
                "sentences": [sentence],
                "cocoid": i,
            }
        )
    (root / "karpathy").mkdir(parents=True, exist_ok=True)
    (root / "karpathy" / "dataset_coco.json").write_text(json.dumps({"images": entries, "dataset": "coco"}))


def _pin_to_own_core(dask_worker: Any) -> list[int]:
    """Pin every thread of a worker process to one core (worker i → core i), so a worker is one core.

    Unpinned, a single worker's decode and prefetch threads use the idle second core, which a second worker
    then takes away: the ratio would no longer measure workers against cores.
    """
    core = int(dask_worker.name) % (os.cpu_count() or 1)
    for thread in Path("/proc/self/task").iterdir():
        os.sched_setaffinity(int(thread.name), {core})
    return [core]


def _run(tmp: Path, name: str, runner: dict[str, Any], shard_size: int, checkpoint: Path) -> float:
    from flows.build_manifests import build_manifests_flow
    from flows.config import parse_config
    from flows.tokenize_images import tokenize_images_flow

    config = parse_config(
        {
            "store": {"url": name},
            "datasets": {"coco": {"kind": "coco", "root": "coco"}},
            "sharding": {"shard_size": shard_size},
            "image_tokenizer": {"name": "vit-vqgan", "checkpoint": str(checkpoint), "reconstruction_sample": 0},
            "device": "cpu",
            "runner": runner,
        },
        base=tmp,
    )
    build_manifests_flow(config)
    start = time.perf_counter()
    (result,) = tokenize_images_flow(config)
    seconds = time.perf_counter() - start
    assert result.rejected == 0 and result.shards_built > 0
    return seconds


def main() -> None:
    """Print seconds and images/s per runner, the 2-vs-1 worker ratio, and whether the stores are identical."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--no-pin", action="store_true", help="let each worker's threads use every core")
    parser.add_argument("--compare-runners", action="store_true", help="also a cold LocalCluster and threads")
    args = parser.parse_args()
    import torch
    from distributed import Client, LocalCluster
    from prefect.testing.utilities import prefect_test_harness
    from safetensors.torch import save_file

    from im2sp_models.image_tokenizers.vit_vqgan_net import PRESETS, ViTVQ
    from storage.store import Store
    from tests.store_compare import content_digests, differences

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as name, prefect_test_harness(server_startup_timeout=120):
        tmp = Path(name)
        checkpoint = tmp / "vit-vqgan-base.safetensors"
        save_file({k: v.contiguous() for k, v in ViTVQ(PRESETS["base"]).state_dict().items()}, str(checkpoint))
        _dataset(tmp / "coco", args.images)
        common = (args.shard_size, checkpoint)
        seconds: dict[str, float] = {}
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster:  # type: ignore[no-untyped-call]
                if not args.no_pin:
                    with Client(cluster) as client:  # type: ignore[no-untyped-call]
                        client.run(_pin_to_own_core)
                runner = {"kind": "dask", "address": cluster.scheduler_address}
                seconds[f"running cluster, {workers} worker(s)"] = _run(tmp, f"warm{workers}", runner, *common)
        stores = ["warm1", "warm2"]
        if args.compare_runners:
            seconds["cold LocalCluster, 2 workers"] = _run(tmp, "cold2", {"kind": "dask", "workers": 2}, *common)
            seconds["threads, torch 2 threads"] = _run(tmp, "threads", {"kind": "local", "workers": 1}, *common)
            stores += ["cold2", "threads"]
        digests = [content_digests(Store(str(tmp / store)), "coco/image-units") for store in stores]
    shards = -(-args.images // args.shard_size)
    print(f"vit-vqgan base, CPU ({os.cpu_count()} cores), {args.images} images 640×480 in {shards} shards")
    for label, value in seconds.items():
        print(f"{label:>30}: {value:7.1f} s  {args.images / value:6.2f} images/s")
    ratio = seconds["running cluster, 1 worker(s)"] / seconds["running cluster, 2 worker(s)"]
    print(f"G1: 2 workers vs 1: ×{ratio:.2f} (target ≥ 1.7)")
    same = all(not differences(digests[0], d) for d in digests[1:])
    print(f"G2: image-unit stores identical across the {len(stores)} runs: {same} ({len(digests[0])} files each)")


if __name__ == "__main__":
    main()
