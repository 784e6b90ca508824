"""The unit GiT's training loop, free of any store: seeded data order, start or resume, steps, checkpoint files.

Data order is a pure function of the seed: epoch ``e`` visits the shards in an order drawn from ``(seed, e)``
and each shard's samples in an order drawn from ``(seed, e, shard name)``. A position is ``(epoch, samples
consumed in the epoch)``, so a resumed run regenerates the order and skips to it: by the shards' sample counts
when given, decoding only the shard that holds the position. A checkpoint is the model files,
``optimizer.pt``, ``scheduler.pt``, ``rng.pt`` (torch's CPU RNG: random crops, dropout on the CPU; and the
CUDA RNGs when the model is on a GPU: dropout there) and ``state.json`` (step, data position, the metrics so
far), handed as bytes to a callback that commits them (the store is :mod:`tasks.train`'s). Python's and
numpy's global RNGs are not used by training (the data order has its own generators), so they are not saved.
Resumed from those files, a run on the CPU is the uninterrupted one, step for step.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from im2sp_models.errors import Im2SpError
from im2sp_models.training import Sample, collate, freeze_image_encoder, make_optimiser, train_step
from im2sp_models.unit_git import build_model, from_git_checkpoint, load_model, save_model

#: Commits one checkpoint: its step and its files (name → bytes).
CheckpointSink = Callable[[int, dict[str, bytes]], None]


@dataclass(frozen=True)
class TrainSettings:
    """Everything that shapes a training run's trajectory (and so its run id), plus the cadences."""

    steps: int
    batch_size: int
    grad_accum: int
    lr: float
    weight_decay: float
    warmup_steps: int
    freeze_image_encoder: bool
    max_units: int
    seed: int
    model: dict[str, Any]
    git_checkpoint: str | None = None
    checkpoint_every: int = 100
    log_every: int = 10


@dataclass
class Trainee:
    """What the loop steps: the model, its optimiser and schedule, and the run's state (``state.json``)."""

    model: Any
    optimiser: Any
    scheduler: Any
    state: dict[str, Any]


def seeded_stream(
    names: Sequence[str],
    load: Callable[[int], Sequence[Sample]],
    *,
    seed: int,
    epoch: int,
    offset: int,
    sizes: Sequence[int] | None = None,
) -> Iterator[tuple[int, int, Sample]]:
    """Samples from position ``(epoch, offset)`` on, forever: ``(epoch, offset after it, sample)``.

    Args:
        names: A stable name per shard (salts its sample order).
        load: The samples of the shard at a position in ``names``.
        seed: The run's seed.
        epoch: Epoch of the starting position.
        offset: Samples of that epoch already consumed.
        sizes: Samples per shard (its commit marker's count), when known: shards that end at or before
            ``offset`` are then passed over without being loaded (None: every shard of the epoch is loaded).

    Raises:
        Im2SpError: When the shards hold no samples at all, or a loaded shard's count differs from ``sizes``.
    """
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(len(names))
        index = 0
        for position in order:
            if sizes is not None and index + sizes[int(position)] <= offset:
                index += sizes[int(position)]  # wholly consumed before the position: its order is not needed
                continue
            samples = load(int(position))
            if sizes is not None and len(samples) != sizes[int(position)]:
                raise Im2SpError(
                    f"shard {names[int(position)]} holds {len(samples)} samples, its marker counts "
                    f"{sizes[int(position)]}: run im2sp verify, then build-training-shards"
                )
            salt = int(hashlib.sha256(names[int(position)].encode()).hexdigest()[:8], 16)
            for j in np.random.default_rng([seed, epoch, salt]).permutation(len(samples)):
                index += 1
                if index > offset:
                    yield epoch, index, samples[int(j)]
        if index == 0:
            raise Im2SpError("the training shards hold no samples")
        epoch, offset = epoch + 1, 0


def new_model(settings: TrainSettings, image_codebook_size: int, speech_units: int, vectors: np.ndarray | None) -> Any:
    """A fresh unit GiT: from ``settings.git_checkpoint`` when set, else built from ``settings.model``."""
    from transformers import GitConfig

    if settings.git_checkpoint:
        model, _ = from_git_checkpoint(
            Path(settings.git_checkpoint),
            image_codebook_size=image_codebook_size,
            speech_units=speech_units,
            codebook_vectors=vectors,
            seed=settings.seed,
        )
        return model
    return build_model(
        GitConfig(**settings.model),
        image_codebook_size=image_codebook_size,
        speech_units=speech_units,
        codebook_vectors=vectors,
        seed=settings.seed,
    )


def start(
    settings: TrainSettings,
    checkpoint: Path | None,
    *,
    image_codebook_size: int,
    speech_units: int,
    codebook_vectors: Callable[[], np.ndarray | None],
    device: str,
) -> Trainee:
    """Resume from a local checkpoint folder (model, optimiser, schedule, RNG, state), or start seeded from scratch.

    ``codebook_vectors`` is called only for a new model (it may load an image tokenizer).
    """
    import torch

    if checkpoint is not None:
        model = load_model(checkpoint, device=device)
        state = json.loads((checkpoint / "state.json").read_text())
    else:
        torch.manual_seed(settings.seed)
        model = new_model(settings, image_codebook_size, speech_units, codebook_vectors()).to(device)
        state = {"step": 0, "epoch": 0, "offset": 0, "history": []}
    if settings.freeze_image_encoder:
        freeze_image_encoder(model)
    optimiser, scheduler = make_optimiser(
        model,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_steps,
        total_steps=settings.steps,
    )
    if checkpoint is not None:
        optimiser.load_state_dict(_torch_load((checkpoint / "optimizer.pt").read_bytes()))
        scheduler.load_state_dict(_torch_load((checkpoint / "scheduler.pt").read_bytes()))
        restore_rng_states(_torch_load((checkpoint / "rng.pt").read_bytes()), cuda=device.startswith("cuda"))
    return Trainee(model, optimiser, scheduler, state)


def checkpoint_files(trainee: Trainee) -> dict[str, bytes]:
    """The files of a checkpoint of ``trainee`` now: the model's, then optimiser, schedule, RNG and state."""
    with tempfile.TemporaryDirectory() as tmp:
        save_model(trainee.model, Path(tmp))
        files = {path.name: path.read_bytes() for path in sorted(Path(tmp).iterdir()) if path.is_file()}
    files["optimizer.pt"] = _torch_bytes(trainee.optimiser.state_dict())
    files["scheduler.pt"] = _torch_bytes(trainee.scheduler.state_dict())
    on_gpu = any(parameter.is_cuda for parameter in trainee.model.parameters())
    files["rng.pt"] = _torch_bytes(rng_states(cuda=on_gpu))
    files["state.json"] = (json.dumps(trainee.state, indent=1) + "\n").encode()
    return files


def rng_states(*, cuda: bool) -> dict[str, Any]:
    """The RNG states a resumed run restores: torch's CPU RNG, and every CUDA device's when ``cuda``."""
    import torch

    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if cuda:
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(saved: Any, *, cuda: bool) -> None:
    """Restore :func:`rng_states` (or a checkpoint's older ``rng.pt``: the bare CPU state).

    The CUDA states are restored only when resuming on CUDA (``cuda``); a checkpoint written on the CPU, or
    before they were saved, has none, and the GPU's RNG then starts where it stands.
    """
    import torch

    states = saved if isinstance(saved, dict) else {"cpu": saved}
    torch.set_rng_state(states["cpu"])
    if cuda and states.get("cuda") is not None:  # a host with fewer GPUs restores those it has
        torch.cuda.set_rng_state_all(states["cuda"][: torch.cuda.device_count()])


def run_steps(
    trainee: Trainee,
    samples: Iterator[tuple[int, int, Sample]],
    settings: TrainSettings,
    *,
    device: str,
    stop_after: int | None,
    commit: CheckpointSink,
) -> tuple[int, list[dict[str, float]]]:
    """Step from ``trainee.state["step"]`` to ``settings.steps`` (or ``stop_after`` steps), checkpointing on the way.

    A checkpoint is committed every ``checkpoint_every`` steps, at the last step, and when this call ends
    between checkpoints. Returns the step reached and the logged metrics (every ``log_every`` steps, the
    first and the last).
    """
    state = trainee.state
    resumed_from = int(state["step"])
    step, history = resumed_from, list(state["history"])
    last = step  # the step of the newest checkpoint (the resumed one, or none needed at 0)
    started, seen = time.perf_counter(), 0
    while step < settings.steps and (stop_after is None or step - resumed_from < stop_after):
        micro = []
        for _ in range(settings.grad_accum):
            batch = []
            for _ in range(settings.batch_size):
                epoch, offset, sample = next(samples)
                batch.append(sample)
            micro.append(collate(batch, max_units=settings.max_units))
        metrics = train_step(trainee.model, micro, trainee.optimiser, trainee.scheduler, device=device)
        step += 1
        seen += metrics.samples
        state.update(step=step, epoch=epoch, offset=offset)
        if step % settings.log_every == 0 or step == settings.steps or step == 1:
            history.append(
                {
                    "step": step,
                    "loss": round(metrics.loss, 5),
                    "unit_accuracy": round(metrics.unit_accuracy, 5),
                    "samples_per_s": round(seen / max(1e-9, time.perf_counter() - started), 2),
                    "lr": float(trainee.scheduler.get_last_lr()[0]),
                }
            )
            state["history"] = history
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            commit(step, checkpoint_files(trainee))
            last = step
    if last != step:
        state["history"] = history
        commit(step, checkpoint_files(trainee))
    return step, history


def _torch_bytes(value: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _torch_load(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)
