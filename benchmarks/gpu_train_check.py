"""GPU check of train-im2sp: optimiser steps/s of a GiT-base-sized unit model in bf16 (not run in CI).

GiT-base shapes (decoder 6 × 768, vision 12 × 768, 197 image tokens), image codebook 8,192, K = 200 speech
units, batches of utterances with 60–160 deduplicated units (SpokenCOCO captions deduplicate to ~100), the
same ``collate`` and ``train_step`` as the flow; needs only torch, transformers and numpy.
Run: ``python -m benchmarks.gpu_train_check [--batch 32] [--steps 30]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from transformers import GitConfig

from im2sp_models.training import Sample, collate, freeze_image_encoder, make_optimiser, train_step
from im2sp_models.unit_git import build_model


def main() -> None:
    """Print steps/s and samples/s, with the unit encoder trained and frozen."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batches = [
        collate(
            [
                Sample(str(i), rng.integers(0, 8192, (32, 32)), rng.integers(0, 200, int(rng.integers(60, 160))))
                for i in range(args.batch)
            ],
            max_units=512,
        )
        for _ in range(4)
    ]
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for frozen in (False, True):
        model = build_model(GitConfig(max_position_embeddings=1024), image_codebook_size=8192, speech_units=200)
        model = model.to(args.device)
        if frozen:
            freeze_image_encoder(model)
        optimiser, scheduler = make_optimiser(model, lr=5e-5, weight_decay=1e-5, warmup_steps=10, total_steps=1000)
        for step in range(5):
            train_step(model, [batches[step % 4]], optimiser, scheduler, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for step in range(args.steps):
            metrics = train_step(model, [batches[step % 4]], optimiser, scheduler, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        parameters = sum(p.numel() for p in model.parameters()) / 1e6
        print(
            f"GiT-base unit model ({parameters:.0f} M parameters), bf16, batch {args.batch}, "
            f"encoder {'frozen' if frozen else 'trained'}: {args.steps / elapsed:.2f} steps/s, "
            f"{args.steps * args.batch / elapsed:.0f} samples/s (last loss {metrics.loss:.2f})"
        )


if __name__ == "__main__":
    main()
