"""B1: tokenize-images throughput with the ViT-VQGAN base architecture vs the bare encoder.

Random weights cost the same as trained ones. The baseline is ``encode`` on tensors already decoded and
resized; the measured path is the per-shard function the flow's tasks run (read JPEG, check sha256, decode,
resize, batch, encode, write Zarr, commit), on the same number of 640×480 JPEGs, in the same process.
Run: ``.venv/bin/python -m benchmarks.bench_tokenize_throughput [--images 24]``.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from im2sp_models.image_preprocess import decode_image
from im2sp_models.image_tokenizers.vit_vqgan_net import PRESETS, ViTVQ
from storage.store import Store
from tasks.image_units import TokenizeSettings, tokenize_shard
from tasks.jobs import ShardJob
from tasks.models import TokenizerRef, tokenizer_for


def main() -> None:
    """Print images/s of both paths and their ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in ViTVQ(PRESETS["base"]).state_dict().items()}, f"{tmp}/base.safetensors"
        )
        root = Path(tmp) / "images"
        root.mkdir()
        rng = np.random.default_rng(0)
        items = []
        for i in range(args.images):
            path = root / f"{i:06d}.jpg"
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path, "JPEG", quality=90)
            items.append((f"{i:06d}", path.name, hashlib.sha256(path.read_bytes()).hexdigest()))
        ref = TokenizerRef("vit-vqgan", f"{tmp}/base.safetensors", "cpu", {"forward_batch": args.batch_size})
        tokenizer = tokenizer_for(ref)
        tensors = np.stack([decode_image((root / name).read_bytes()) for _, name, _ in items])
        tokenizer.encode(tensors[: args.batch_size])  # warm-up
        start = time.perf_counter()
        for first in range(0, len(tensors), args.batch_size):
            tokenizer.encode(tensors[first : first + args.batch_size])
        bare = args.images / (time.perf_counter() - start)
        job = ShardJob("bench", "train-00000", "bench", tuple(items))
        start = time.perf_counter()
        settings = TokenizeSettings(batch_size=args.batch_size, io_workers=2)
        outcome = tokenize_shard(Store(f"{tmp}/store"), root, job, tokenizer.fingerprint, ref, settings)
        flow = args.images / (time.perf_counter() - start)
        assert outcome.stored == args.images
    print(
        f"vit-vqgan base, CPU, {torch.get_num_threads()} torch threads, batch {args.batch_size}, {args.images} images"
    )
    print(f"bare encoder on pre-decoded tensors: {bare:.2f} images/s")
    print(f"tokenize shard (read, decode, resize, encode, write, commit): {flow:.2f} images/s")
    print(f"ratio: {flow / bare:.3f} (target ≥ 0.9)")


if __name__ == "__main__":
    main()
