"""E1: training input samples/s — from the training shards vs the paper's code path, same machine, same run.

The paper's code path tokenizes images on the fly: every step reads each JPEG, decodes it, resizes it to
256 × 256 and encodes it with the ViT-VQGAN (base architecture, random weights: the same cost). Ours reads
the xz training shards (`tasks/train.stream`: decompress, verify, load the arrays, seeded order) and
collates padded batches (`im2sp_models/training.collate`). Both produce the same batch content: image units
+ speech-unit ids. Target: ≥ 50 × the paper's path.
Run: ``.venv/bin/python -m benchmarks.bench_training_input [--images 8] [--samples 2048]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bench_speech_unit_bits import hubert_like
from im2sp_models.image_preprocess import decode_image
from im2sp_models.image_tokenizers.vit_vqgan_net import PRESETS, ViTVQ
from im2sp_models.training import Sample, collate
from storage.kinds import TRAINING_SHARDS
from storage.store import Store
from storage.versions import StoreVersion
from storage.webdataset_writer import WebDatasetWriter
from tasks.models import TokenizerRef, tokenizer_for
from tasks.train import TrainData, stream
from tasks.training_shards import training_sample

BATCH = 8


def main() -> None:
    """Print samples/s of both paths and the ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2048)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    speech = hubert_like(args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        import torch
        from safetensors.torch import save_file

        torch.manual_seed(0)
        save_file({k: v.contiguous() for k, v in ViTVQ(PRESETS["base"]).state_dict().items()}, f"{tmp}/vq.safetensors")
        tokenizer = tokenizer_for(TokenizerRef("vit-vqgan", f"{tmp}/vq.safetensors", "cpu", {"forward_batch": BATCH}))
        paths = []
        for i in range(args.images):
            path = Path(tmp) / f"{i:06d}.jpg"
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path, "JPEG", quality=90)
            paths.append(path)

        def paper_batch(first: int) -> dict[str, object]:
            chosen = [paths[(first + j) % len(paths)] for j in range(BATCH)]
            grids = tokenizer.encode(np.stack([decode_image(p.read_bytes()) for p in chosen]))
            samples = [Sample(str(j), grids[j], speech[(first + j) % len(speech)]) for j in range(BATCH)]
            return collate(samples, max_units=512)

        paper_batch(0)  # warm-up
        start = time.perf_counter()
        for first in range(0, args.images, BATCH):
            paper_batch(first)
        paper = max(BATCH, args.images) / (time.perf_counter() - start)

        store = Store(f"{tmp}/store")
        version = StoreVersion(store, "bench", TRAINING_SHARDS, "v")
        version.ensure_created({})
        grids = rng.integers(0, 8192, (args.samples // 5 + 1, 32, 32)).astype(np.uint16)
        per_shard = 1024
        for shard in range(0, args.samples, per_shard):
            with WebDatasetWriter(version, f"train-{shard:05d}", input_fingerprint="b", compression="xz") as writer:
                for j in range(shard, min(shard + per_shard, args.samples)):
                    writer.write(
                        f"u{j:07d}", training_sample(grids[j // 5], speech[j], "a caption", str(j // 5), "train")
                    )
        samples = stream(store, TrainData({"bench": "v"}), seed=0, epoch=0, offset=0)
        start = time.perf_counter()
        for _ in range(args.samples // BATCH):
            collate([next(samples)[2] for _ in range(BATCH)], max_units=512)
        ours = (args.samples // BATCH) * BATCH / (time.perf_counter() - start)
    print(f"E1 training input, batches of {BATCH}, CPU, {torch.get_num_threads()} torch threads")
    print(f"  paper's path (JPEG decode, resize 256, ViT-VQGAN base encode, every step): {paper:.2f} samples/s")
    print(f"  training shards (xz, verified, seeded order, collate): {ours:.0f} samples/s")
    print(f"  ratio ×{ours / paper:.0f} (target ≥ 50)")


if __name__ == "__main__":
    main()
