"""GPU check of unit-hifigan training: steps/s of the recipe against the bare generator's forward + backward.

Needs torch and numpy only, so it runs on a GPU host without the rest of the stack. The data are synthetic
utterances (tone frames per unit, 2–6 s each, K = 100 units) as ``UnitHifiGanTrainer.target`` holds them, so the
figures are the trainer's own: random segments, the discriminators' step, the generator's step with every loss.

For each precision (fp32, and bf16 on a GPU):
1. **bare**: the generator alone on the same segments — embedding, forward, an L1 on the waveform, backward and
   an AdamW step; the floor any recipe pays.
2. **recipe**: ``UnitHifiGanTrainer.train_step`` (mel loss, multi-period + multi-scale discriminators, feature
   matching, duration predictor).
Each after warm-up steps; steps/s, segments/s and the ratio recipe / bare. The generator is the recipe's
(``upsample_initial_channel`` 512, the speech-resynthesis shape) unless ``--small``.

The last line is one JSON object. Run: ``python -m benchmarks.gpu_vocoder_check [--device cuda] [--steps 20]``
(``--device cpu --small --steps 3`` runs the same code on the CPU, slowly).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from im2sp_models.unit_hifigan_train import UnitHifiGanTrainer, UnitHifiGanTrainSettings, waveform_target

CLUSTERS = 100
#: A CPU-sized generator and discriminators (``--small``).
SMALL: dict[str, Any] = {
    "upsample_initial_channel": 64,
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3, 5]],
    "discriminator_divisor": 8,
    "batch_size": 4,
}


def utterances(count: int, settings: UnitHifiGanTrainSettings, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Runs of units, each frame a tone whose pitch depends on its unit; 2–6 s each, as the trainer's targets."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        runs = int(rng.integers(40, 120))
        units = np.repeat(rng.integers(0, CLUSTERS, runs), rng.integers(1, 5, runs))
        pitch = np.repeat(120.0 + 15.0 * units, settings.code_hop_size)
        wave = 0.4 * np.sin(2 * np.pi * np.cumsum(pitch) / settings.sampling_rate)
        out.append((units, waveform_target(wave, settings.sampling_rate, len(units), settings)))
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_rate(trainer: UnitHifiGanTrainer, data: list[tuple[np.ndarray, np.ndarray]], steps: int) -> float:
    """Steps/s of the generator alone: forward, waveform L1, backward, AdamW, on the trainer's segments."""
    optimizer = torch.optim.AdamW(trainer.generator.parameters(), trainer.settings.learning_rate)
    batch = trainer.settings.batch_size

    def step(index: int) -> None:
        units, audio = trainer._segments([data[(index * batch + i) % len(data)] for i in range(batch)])
        codes = torch.from_numpy(units).to(trainer.device)
        real = torch.from_numpy(audio).to(trainer.device).unsqueeze(1)
        with trainer._autocast():
            fake = trainer.generator.body(trainer.generator.dict(codes).transpose(1, 2)).float()
        loss = (fake - real).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _timed(step, steps, trainer.device)


def recipe_rate(trainer: UnitHifiGanTrainer, data: list[tuple[np.ndarray, np.ndarray]], steps: int) -> float:
    """Steps/s of ``train_step``: both discriminators' step and the generator's with every loss."""
    batch = trainer.settings.batch_size

    def step(index: int) -> None:
        trainer.train_step([data[(index * batch + i) % len(data)] for i in range(batch)])

    return _timed(step, steps, trainer.device)


def _timed(step: Any, steps: int, device: str) -> float:
    for index in range(2):  # warm-up: kernels chosen, memory pools grown
        step(index)
    _sync(device)
    start = time.perf_counter()
    for index in range(steps):
        step(index)
    _sync(device)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--small", action="store_true", help="a CPU-sized generator and discriminators")
    args = parser.parse_args()
    results: dict[str, Any] = {"device": args.device, "steps": args.steps, "small": args.small}
    if args.device.startswith("cuda"):
        results["gpu"] = torch.cuda.get_device_name()
    precisions = ["fp32", "bf16"] if args.device.startswith("cuda") else ["fp32"]
    for precision in precisions:
        settings = UnitHifiGanTrainSettings.model_validate({**(SMALL if args.small else {}), "precision": precision})
        data = utterances(64, settings)
        bare = bare_rate(UnitHifiGanTrainer(settings, CLUSTERS, device=args.device), data, args.steps)
        recipe = recipe_rate(UnitHifiGanTrainer(settings, CLUSTERS, device=args.device), data, args.steps)
        row = {
            "bare_steps_per_s": round(bare, 3),
            "recipe_steps_per_s": round(recipe, 3),
            "recipe_segments_per_s": round(recipe * settings.batch_size, 2),
            "recipe_over_bare": round(recipe / bare, 3),
            "batch_size": settings.batch_size,
            "segment_size": settings.segment_size,
        }
        if args.device.startswith("cuda"):
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            torch.cuda.reset_peak_memory_stats()
        results[precision] = row
        print(precision, row, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
