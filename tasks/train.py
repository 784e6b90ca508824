"""Training the unit GiT from the training shards: streaming batches, checkpoints in the store, exact resume.

Data order is a pure function of the seed: epoch ``e`` visits the training shards in an order drawn from
``(seed, e)`` and each shard's samples in an order drawn from ``(seed, e, shard)``. A position is ``(epoch,
samples consumed in the epoch)``, so a resumed run regenerates the order and skips to it. Each checkpoint is
a committed shard ``step-<N>`` of ``_shared/train-runs/<run id>/`` holding the model (``config.json``,
``im2sp.json``, ``model.safetensors``), ``optimizer.pt``, ``scheduler.pt``, ``rng.pt`` (torch's CPU RNG:
random crops, dropout) and ``state.json`` (step, data position, the metrics so far). A run restarts from its
newest committed checkpoint; on the CPU the continued run is the uninterrupted one, step for step.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task

from im2sp_models.training import Sample, collate, freeze_image_encoder, make_optimiser, train_step
from im2sp_models.unit_git import build_model, from_git_checkpoint, load_model, save_model
from storage.blob_writer import BlobWriter
from storage.errors import CorruptShardError, Im2SpError
from storage.kinds import SHARED, TRAIN_RUNS, TRAINING_SHARDS
from storage.locks import shard_lock
from storage.reader import iter_webdataset, verified_local_copy
from storage.store import Store
from storage.versions import StoreVersion
from tasks.models import TokenizerRef, tokenizer_for

KEEP_CHECKPOINTS = 2


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


@dataclass(frozen=True)
class TrainData:
    """The training-shards versions to read (dataset → version) and which splits' shards."""

    versions: dict[str, str]
    splits: tuple[str, ...] = ("train", "restval")


@dataclass
class TrainResult:
    """What a call of :func:`train` did (small: returned by the task)."""

    run_id: str
    url: str
    step: int
    resumed_from: int
    history: list[dict[str, float]] = field(default_factory=list)


def run_id(settings: TrainSettings, data: TrainData) -> str:
    """The run's identity: settings that change the trajectory and the data versions (not the cadences)."""
    identity = {k: v for k, v in asdict(settings).items() if k not in ("checkpoint_every", "log_every")}
    document = json.dumps({"settings": identity, "data": asdict(data)}, sort_keys=True)
    return hashlib.sha256(document.encode()).hexdigest()[:16]


def _shards(store: Store, data: TrainData) -> list[tuple[str, str, str]]:
    shards = []
    for dataset, version_id in sorted(data.versions.items()):
        version = StoreVersion(store, dataset, TRAINING_SHARDS, version_id)
        shards += [(dataset, version_id, s) for s in sorted(version.committed()) if s.split("-")[0] in data.splits]
    if not shards:
        raise Im2SpError(f"no committed training shards of splits {', '.join(data.splits)}: run build-training-shards")
    return shards


def _decoded(store: Store, dataset: str, version_id: str, shard_id: str) -> list[Sample]:
    version = StoreVersion(store, dataset, TRAINING_SHARDS, version_id)
    return [
        Sample(key, np.load(io.BytesIO(f["image.npy"])), np.load(io.BytesIO(f["units.npy"])))
        for key, f in iter_webdataset(version, shard_id)
    ]


def stream(store: Store, data: TrainData, seed: int, epoch: int, offset: int) -> Iterator[tuple[int, int, Sample]]:
    """Samples from position ``(epoch, offset)`` on, forever: ``(epoch, offset after it, sample)``."""
    shards = _shards(store, data)
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(len(shards))
        index = 0
        for position in order:
            dataset, version_id, shard_id = shards[int(position)]
            samples = _decoded(store, dataset, version_id, shard_id)
            salt = int(hashlib.sha256(f"{dataset}/{shard_id}".encode()).hexdigest()[:8], 16)
            for j in np.random.default_rng([seed, epoch, salt]).permutation(len(samples)):
                index += 1
                if index > offset:
                    yield epoch, index, samples[int(j)]
        if index == 0:
            raise Im2SpError("the training shards hold no samples")
        epoch, offset = epoch + 1, 0


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def _torch_bytes(value: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _torch_load(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


def save_checkpoint(
    version: StoreVersion, step: int, model: Any, optimiser: Any, scheduler: Any, state: dict[str, Any]
) -> None:
    """Commit checkpoint ``step-<N>`` (all files, then the marker), then keep only the newest two."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, Path(tmp))
        files = _files(Path(tmp))
    files["optimizer.pt"] = _torch_bytes(optimiser.state_dict())
    files["scheduler.pt"] = _torch_bytes(scheduler.state_dict())
    files["rng.pt"] = _torch_bytes(torch.get_rng_state())
    files["state.json"] = (json.dumps(state, indent=1) + "\n").encode()
    with BlobWriter(version, f"step-{step:08d}", input_fingerprint=version.version) as writer:
        for name, data in files.items():
            writer.write(name, {"bytes": data})
    steps = sorted(version.committed())
    version.prune(steps[-KEEP_CHECKPOINTS:])


def latest_checkpoint(version: StoreVersion) -> str | None:
    """The newest committed checkpoint's shard id that ``im2sp verify`` has not flagged damaged, or None.

    A flagged checkpoint (or one whose marker no longer parses) is passed over: training resumes from the one
    before it and writes its steps again, evaluation takes the newest intact one.
    """
    steps = [shard_id for shard_id in version.marker_ids() if shard_id.startswith("step-")]
    for step in reversed(steps):
        if version.store.exists(version.damaged_key(step)):
            continue
        with contextlib.suppress(CorruptShardError):
            if version.marker(step) is not None:
                return step
    return None


def _new_model(settings: TrainSettings, image_codebook_size: int, speech_units: int, vectors: np.ndarray | None) -> Any:
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


def train(
    store: Store,
    data: TrainData,
    settings: TrainSettings,
    *,
    image_codebook_size: int,
    speech_units: int,
    tokenizer: TokenizerRef | None = None,
    device: str = "cpu",
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or continue) the run of these settings and data, from its newest checkpoint if any.

    ``stop_after`` ends this call after that many steps, with a checkpoint (a time-boxed job: the next call
    resumes).
    """
    import torch

    identity = run_id(settings, data)
    version = StoreVersion(store, SHARED, TRAIN_RUNS, identity)
    version.ensure_created({"settings": asdict(settings), "data": asdict(data)})
    latest = latest_checkpoint(version)
    if latest is not None:
        folder = verified_local_copy(version, latest)  # resume only from a checkpoint that matches its marker
        model = load_model(folder, device=device)
        state = json.loads((folder / "state.json").read_text())
    else:
        torch.manual_seed(settings.seed)
        vectors = None
        if tokenizer is not None:
            found = tokenizer_for(tokenizer).codebook_vectors()
            vectors = found if found.shape[0] == image_codebook_size else None
        model = _new_model(settings, image_codebook_size, speech_units, vectors).to(device)
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
    if latest is not None:
        optimiser.load_state_dict(_torch_load((folder / "optimizer.pt").read_bytes()))
        scheduler.load_state_dict(_torch_load((folder / "scheduler.pt").read_bytes()))
        torch.set_rng_state(_torch_load((folder / "rng.pt").read_bytes()))
    resumed_from = int(state["step"])
    samples = stream(store, data, settings.seed, int(state["epoch"]), int(state["offset"]))
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
        metrics = train_step(model, micro, optimiser, scheduler, device=device)
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
                    "lr": float(scheduler.get_last_lr()[0]),
                }
            )
            state["history"] = history
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            save_checkpoint(version, step, model, optimiser, scheduler, state)
            last = step
    if last != step:
        state["history"] = history
        save_checkpoint(version, step, model, optimiser, scheduler, state)
    return TrainResult(identity, version.url, step, resumed_from, history)


@task(name="train-im2sp")
def train_task(
    store_url: str,
    storage_options: dict[str, Any] | None,
    data: TrainData,
    settings: TrainSettings,
    image_codebook_size: int,
    speech_units: int,
    tokenizer: TokenizerRef | None,
    device: str,
    stop_after: int | None,
) -> TrainResult:
    """Prefect task around :func:`train` (``device``: ``auto`` picks CUDA when present).

    One trainer per run: a second task for the same run waits for the first (a lock on the run folder, as
    shards have), then resumes from its newest checkpoint, or finds the steps done.
    """
    from im2sp_models.device import resolve_device

    store = Store(store_url, storage_options)
    run = StoreVersion(store, SHARED, TRAIN_RUNS, run_id(settings, data))
    with shard_lock(store, run.lock_key("run")):
        return train(
            store,
            data,
            settings,
            image_codebook_size=image_codebook_size,
            speech_units=speech_units,
            tokenizer=tokenizer,
            device=resolve_device(device),
            stop_after=stop_after,
        )
