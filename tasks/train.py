"""Training the unit GiT from the training shards in the store: shard reading, checkpoint commits, one run lock.

The loop, the seeded data order and the checkpoint files are :mod:`im2sp_models.train_loop`; here the training
shards are read and decoded, and each checkpoint is committed as shard ``step-<N>`` of
``_shared/train-runs/<run id>/`` (all files, then the marker; the newest two are kept). A run restarts from its
newest committed, intact checkpoint; on the CPU the continued run is the uninterrupted one, step for step.
A resumed run passes over the shards before its position by their markers' counts, without reading them.

The image-unit embeddings of a new model start from the codebook vectors of the tokenizer that made the
training shards' image units, found by their lineage (the image-units version the shards name, the tokenizer
fingerprint it names), never from whichever codebook is current now.
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

from im2sp_models.image_tokenizers import TOKENIZERS
from im2sp_models.train_loop import TrainSettings as TrainSettings  # the flows' name for it
from im2sp_models.train_loop import run_steps, seeded_stream, start
from im2sp_models.training import Sample
from storage.blob_writer import BlobWriter
from storage.errors import CorruptShardError, Im2SpError
from storage.kinds import IMAGE_CODEBOOK, IMAGE_UNITS, SHARED, TRAIN_RUNS, TRAINING_SHARDS
from storage.locks import shard_lock
from storage.reader import iter_webdataset, verified_local_copy
from storage.shard_plan import split_of
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
        tokenizer: The configured image tokenizer (its device and settings, and its checkpoint when it is the
            one that made the units). The image-unit embeddings start from the codebook vectors of the
            tokenizer that made the training shards' units (:func:`lineage_tokenizer`) when their count
            matches; None: initialised at random.
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


def _shards(store: Store, data: TrainData) -> list[tuple[str, str, str, int]]:
    """``(dataset, version id, shard id, samples stored)`` of every committed shard of the data's splits."""
    shards = []
    for dataset, version_id in sorted(data.versions.items()):
        committed = StoreVersion(store, dataset, TRAINING_SHARDS, version_id).committed()
        shards += [
            (dataset, version_id, shard_id, marker.stored)
            for shard_id, marker in sorted(committed.items())
            if split_of(shard_id) in data.splits
        ]
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
    """Samples from position ``(epoch, offset)`` on, forever: ``(epoch, offset after it, sample)``.

    Shards that end before ``offset`` are passed over by their markers' counts, never read.
    """
    shards = _shards(store, data)
    names = [f"{dataset}/{shard_id}" for dataset, _, shard_id, _ in shards]
    sizes = [stored for *_, stored in shards]
    yield from seeded_stream(
        names, lambda i: _decoded(store, *shards[i][:3]), seed=seed, epoch=epoch, offset=offset, sizes=sizes
    )


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
    # Resolved (and its files verified) even when resuming: a missing or damaged input is never "no codebook".
    lineage = None if vocabulary.tokenizer is None else lineage_tokenizer(store, data, vocabulary.tokenizer)
    trainee = start(
        settings,
        None if latest is None else verified_local_copy(version, latest),  # only one that matches its marker
        image_codebook_size=vocabulary.image_codebook_size,
        speech_units=vocabulary.speech_units,
        codebook_vectors=partial(_codebook_vectors, lineage, vocabulary.image_codebook_size),
        device=device,
    )
    resumed_from = int(trainee.state["step"])
    samples = stream(store, data, settings.seed, int(trainee.state["epoch"]), int(trainee.state["offset"]))
    commit = partial(save_checkpoint, version)
    step, history = run_steps(trainee, samples, settings, device=device, stop_after=stop_after, commit=commit)
    return TrainResult(identity, version.url, step, resumed_from, history)


def units_tokenizer(store: Store, data: TrainData) -> tuple[str, str]:
    """The image tokenizer (registry name, fingerprint) that made the image units of the data's training shards.

    Read from lineage: each training-shards version names its image-units version, which names the tokenizer.

    Raises:
        Im2SpError: The datasets' units come from different tokenizers, or a version's records disagree.
    """
    made: dict[str, tuple[str, str]] = {}
    for dataset, version_id in sorted(data.versions.items()):
        joined = StoreVersion(store, dataset, TRAINING_SHARDS, version_id).info()["produced_by"]
        units = StoreVersion(store, dataset, IMAGE_UNITS, joined["image_units"]).info()["produced_by"]
        made_by = str(units.get("fingerprint") or joined["image_units"])
        if joined.get("image_codebook", made_by) != made_by:
            raise Im2SpError(
                f"{dataset} training shards {version_id} name image codebook {joined['image_codebook']}, but their "
                f"image units {joined['image_units']} were made by {made_by}: rerun build-training-shards"
            )
        made[dataset] = (str(units["tokenizer"]), made_by)
    if len(set(made.values())) != 1:
        listed = ", ".join(f"{dataset}: {name} {made_by}" for dataset, (name, made_by) in made.items())
        raise Im2SpError(
            f"the training shards' image units come from different tokenizers ({listed or 'no datasets'}): "
            "rerun tokenize-images and build-training-shards for every dataset with one tokenizer"
        )
    return next(iter(made.values()))


def lineage_tokenizer(store: Store, data: TrainData, configured: TokenizerRef) -> tuple[TokenizerRef, str]:
    """A loadable reference to the tokenizer that made the training shards' image units, and its fingerprint.

    Never the current codebook: a tokenizer that learns its codebook (patch-vq) is loaded from the store's
    image-codebook version of that fingerprint. Otherwise (or when that version is gone) only the configured
    checkpoint of the same tokenizer can be it (or, for a weight-free one, its name); :func:`_codebook_vectors`
    checks the fingerprint when it is loaded.

    Args:
        store: The store.
        data: The training data (its training-shards versions).
        configured: The configured tokenizer: its device and settings, and its checkpoint when of that name.

    Raises:
        Im2SpError: The tokenizer that made the units cannot be had (one line naming what to rerun).
    """
    name, made_by = units_tokenizer(store, data)
    entry, same_kind = TOKENIZERS.entry(name), configured.name == name
    settings = configured.options if same_kind else None
    if entry.learns_codebook:
        codebook = StoreVersion(store, SHARED, IMAGE_CODEBOOK, made_by)
        if codebook.marker("all") is not None:
            return TokenizerRef(name, str(verified_local_copy(codebook, "all")), configured.device, settings), made_by
    if same_kind and configured.checkpoint:
        return configured, made_by
    if not entry.needs_checkpoint and not entry.learns_codebook:  # weight-free: its name and settings are all
        return TokenizerRef(name, "", configured.device, settings), made_by
    raise Im2SpError(
        f"the training shards' image units were made by {name} {made_by}, which is neither in the store's image "
        "codebooks nor the configured image_tokenizer: configure it, or rerun tokenize-images and build-training-shards"
    )


def _codebook_vectors(lineage: tuple[TokenizerRef, str] | None, image_codebook_size: int) -> np.ndarray | None:
    """The codebook vectors of the tokenizer that made the units, to initialise unit embeddings (count matching).

    Args:
        lineage: What :func:`lineage_tokenizer` found (None: no tokenizer, initialised at random).
        image_codebook_size: Entries the model's unit embedding has.

    Raises:
        Im2SpError: The loaded tokenizer is not the one that made the units (by fingerprint).
    """
    if lineage is None:
        return None
    ref, made_by = lineage
    tokenizer = tokenizer_for(ref)
    if tokenizer.fingerprint != made_by:
        raise Im2SpError(
            f"image tokenizer {ref.name} {ref.checkpoint or '(no checkpoint)'} is {tokenizer.fingerprint}, but the "
            f"training shards' image units were made by {made_by}: configure that one, or rerun tokenize-images "
            "and build-training-shards"
        )
    found = tokenizer.codebook_vectors()
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
