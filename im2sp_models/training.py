"""Training pieces for the unit GiT, free of any store: batching, optimiser + schedule, one optimiser step.

The paper's settings are the defaults: AdamW, learning rate 5e-5, weight decay 1e-5; a linear warmup then a
cosine decay to zero over the run. Gradient accumulation sums micro-batches before a step; on CUDA the
forward runs under bf16 autocast.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from im2sp_models.unit_git import PAD_ID, speech_units_to_ids, text_logits


@dataclass(frozen=True)
class Sample:
    """One training example: a 32 × 32 image-unit grid and deduplicated speech units."""

    key: str
    grid: np.ndarray
    units: np.ndarray


@dataclass(frozen=True)
class StepMetrics:
    """What one optimiser step measured."""

    loss: float
    unit_accuracy: float
    tokens: int
    samples: int


def collate(samples: Sequence[Sample], *, max_units: int) -> dict[str, Any]:
    """Tensors of a batch: unit grids as ``(B, 1, 32, 32)`` floats, padded ids, attention mask, labels.

    Speech units beyond ``max_units`` are cut (the EOS is kept); labels are the ids with padding as -100.
    """
    import torch

    sequences = []
    for sample in samples:
        ids = speech_units_to_ids(sample.units[:max_units])
        sequences.append(ids)
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(samples), width), PAD_ID, dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.from_numpy(ids)
    mask = (input_ids != PAD_ID).long()
    grids = torch.from_numpy(np.stack([s.grid for s in samples]).astype(np.float32))[:, None]
    return {
        "pixel_values": grids,
        "input_ids": input_ids,
        "attention_mask": mask,
        "labels": input_ids.masked_fill(mask == 0, -100),
    }


def make_optimiser(
    model: Any, *, lr: float, weight_decay: float, warmup_steps: int, total_steps: int
) -> tuple[Any, Any]:
    """AdamW over the trainable parameters and a warmup + cosine ``LambdaLR``."""
    import torch

    parameters = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def freeze_image_encoder(model: Any) -> None:
    """Keep the unit encoder's weights fixed (the visual projection and the decoder still train)."""
    for parameter in model.git.image_encoder.parameters():
        parameter.requires_grad = False


def train_step(
    model: Any, micro_batches: Sequence[dict[str, Any]], optimiser: Any, scheduler: Any, *, device: str
) -> StepMetrics:
    """One optimiser step over ``micro_batches`` (gradient accumulation), weighted by their tokens."""
    import torch

    model.train()
    optimiser.zero_grad(set_to_none=True)
    total_tokens = sum(int((batch["labels"][:, 1:] != -100).sum()) for batch in micro_batches)
    loss_sum, correct = 0.0, 0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else contextlib.nullcontext()
    for batch in micro_batches:
        moved = {name: tensor.to(device) for name, tensor in batch.items()}
        labels = moved.pop("labels")
        with autocast:
            logits = text_logits(model(**moved).logits)[:, :-1].float()
        targets = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
        )
        scaled: Any = loss / max(1, total_tokens)
        scaled.backward()
        loss_sum += float(loss.detach())
        valid = targets != -100
        correct += int((logits.argmax(-1)[valid] == targets[valid]).sum())
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimiser.step()
    scheduler.step()
    samples = sum(int(batch["input_ids"].shape[0]) for batch in micro_batches)
    return StepMetrics(loss_sum / max(1, total_tokens), correct / max(1, total_tokens), total_tokens, samples)
