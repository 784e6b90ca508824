"""Training the unit GiT from the training shards in the store: shard reading, checkpoint commits, one run lock.

The loop, the seeded data order and the checkpoint files are :mod:`im2sp_models.train_loop`; here the training
shards are read and decoded, and each checkpoint is committed as shard ``step-<N>`` of
``_shared/train-runs/<run id>/`` (all files, then the marker; the newest two are kept). A run restarts from its
newest committed, intact checkpoint; on the CPU the continued run is the uninterrupted one, step for step.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
from prefect import task

from im2sp_models.train_loop import TrainSettings as TrainSettings  # the flows' name for it
from im2sp_models.train_loop import run_steps, seeded_stream, start
from im2sp_models.training import Sample
from storage.blob_writer import BlobWriter
from storage.errors import CorruptShardError, Im2SpError
from storage.kinds import SHARED, TRAIN_RUNS, TRAINING_SHARDS
from storage.locks import shard_lock
from storage.reader import iter_webdataset, verified_local_copy
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from tasks.models import TokenizerRef, tokenizer_for

KEEP_CHECKPOINTS = 2


@dataclass(frozen=True)
class TrainData:
    """The training-shards versions to read (dataset → version) and which splits' shards."""

    versions: dict[str, str]
    splits: tuple[str, ...] = ("train", "restval")


@dataclass(frozen=True)
class Vocabulary:
    """The unit vocabularies the model is built for: image codebook size, speech units (K), image tokenizer.

    Attributes:
        image_codebook_size: Entries in the image codebook.
        speech_units: Speech units (the speech codebook's K).
        tokenizer: The image tokenizer, whose codebook vectors initialise the image-unit embeddings when
            their count matches (None: initialised at random).
    """

    image_codebook_size: int
    speech_units: int
    tokenizer: TokenizerRef | None = None


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
    names = [f"{dataset}/{shard_id}" for dataset, _, shard_id in shards]
    yield from seeded_stream(names, lambda i: _decoded(store, *shards[i]), seed=seed, epoch=epoch, offset=offset)


def save_checkpoint(version: StoreVersion, step: int, files: dict[str, bytes]) -> None:
    """Commit checkpoint ``step-<N>`` (all files, then the marker), then keep only the newest two."""
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


def train(
    store: Store,
    data: TrainData,
    settings: TrainSettings,
    vocabulary: Vocabulary,
    *,
    device: str = "cpu",
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or continue) the run of these settings and data, from its newest checkpoint if any.

    ``stop_after`` ends this call after that many steps, with a checkpoint (a time-boxed job: the next call
    resumes).
    """
    identity = run_id(settings, data)
    version = StoreVersion(store, SHARED, TRAIN_RUNS, identity)
    version.ensure_created({"settings": asdict(settings), "data": asdict(data)})
    latest = latest_checkpoint(version)
    trainee = start(
        settings,
        None if latest is None else verified_local_copy(version, latest),  # only one that matches its marker
        image_codebook_size=vocabulary.image_codebook_size,
        speech_units=vocabulary.speech_units,
        codebook_vectors=partial(_codebook_vectors, vocabulary.tokenizer, vocabulary.image_codebook_size),
        device=device,
    )
    resumed_from = int(trainee.state["step"])
    samples = stream(store, data, settings.seed, int(trainee.state["epoch"]), int(trainee.state["offset"]))
    commit = partial(save_checkpoint, version)
    step, history = run_steps(trainee, samples, settings, device=device, stop_after=stop_after, commit=commit)
    return TrainResult(identity, version.url, step, resumed_from, history)


def _codebook_vectors(tokenizer: TokenizerRef | None, image_codebook_size: int) -> np.ndarray | None:
    """The image tokenizer's codebook vectors to initialise unit embeddings, when their count matches."""
    if tokenizer is None:
        return None
    found = tokenizer_for(tokenizer).codebook_vectors()
    return found if found.shape[0] == image_codebook_size else None


@task(name="train-im2sp")
def train_task(
    store: StoreRef,
    data: TrainData,
    settings: TrainSettings,
    vocabulary: Vocabulary,
    device: str,
    stop_after: int | None,
) -> TrainResult:
    """Prefect task around :func:`train` (``device``: ``auto`` picks CUDA when present).

    One trainer per run: a second task for the same run waits for the first (a lock on the run folder, as
    shards have), then resumes from its newest checkpoint, or finds the steps done.
    """
    from im2sp_models.device import resolve_device

    opened = store.open()
    run = StoreVersion(opened, SHARED, TRAIN_RUNS, run_id(settings, data))
    with shard_lock(opened, run.lock_key("run")):
        return train(opened, data, settings, vocabulary, device=resolve_device(device), stop_after=stop_after)
