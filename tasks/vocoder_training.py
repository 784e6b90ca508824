"""Training a unit vocoder for one speech codebook from the store's (speech units, recording) pairs.

The pairs are the training splits' utterances: their full-rate speech units (the current speech-units version of
each dataset, every shard checked against the speech plan as ``storage/lineage.py`` requires) and the log-mel of
their recording, read from the dataset root at the manifests' path and checked against its sha256. At most
``max_utterances`` of them, a seeded choice; one that cannot be read now is left out with its reason (counted).
Each optimiser step takes a batch chosen from the step number and the seed alone, so a run resumed from a
checkpoint is the uninterrupted one. Checkpoints are shards ``step-<N>`` of the vocoder version (the newest
two kept); the finished vocoder is shard ``all`` (``storage/vocoder_store.py``), after which they are removed.
"""

from __future__ import annotations

import io
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from prefect import task

from im2sp_models.audio import load_audio
from im2sp_models.errors import ItemRejected
from im2sp_models.spectrogram import log_mel
from im2sp_models.vocoders import VOCODERS, training_settings
from storage.blob_writer import BlobWriter
from storage.errors import NotEnoughDataError
from storage.hashing import fingerprint
from storage.kinds import MANIFESTS, SHARED, SPEECH_UNITS
from storage.kinds import VOCODERS as VOCODERS_KIND
from storage.lineage import InputShard, checked_input
from storage.locks import shard_lock
from storage.manifests import ok_rows
from storage.reader import verified_local_copy
from storage.speech_units_writer import read_speech_units
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from storage.vocoder_store import FINISHED
from tasks.jobs import read_verified
from tasks.train import KEEP_CHECKPOINTS, latest_checkpoint

#: What the flow is named in lineage refusals.
READER = "train-vocoder"


class Trainer(Protocol):
    """What train-vocoder needs of a trainable vocoder kind's ``Trainer`` (``im2sp_models/unit_mel.py``)."""

    step: int

    def train_step(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """One optimiser step on (full-rate units, log-mel) pairs."""

    def save_checkpoint(self, folder: Path) -> None:
        """Everything a resumed run needs."""

    def export(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        """The vocoder folder the kind's ``load`` reads."""


def vocoder_settings(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """A trainable kind's settings as it validates them (all fields, JSON-ready): part of the version id.

    Raises:
        ConfigError: An option the kind does not take.
    """
    return dict(training_settings(kind, given).model_dump(mode="json"))


@dataclass(frozen=True)
class VocoderPlan:
    """What one train-vocoder run learns from and how: the version id hashes all but the cadences.

    Attributes:
        kind: The trainable vocoder kind (``unit-mel``, ``unit-hifigan``).
        settings: Its settings, as the kind validated them.
        codebook_id: The speech codebook whose units it speaks.
        clusters: That codebook's K.
        inputs: ``(dataset, speech-units shard)`` pairs it reads, each with the plan fingerprint its marker must
            carry.
        manifests: Dataset → the manifests version (recording paths and sha256).
        roots: Dataset → its root folder.
        max_utterances: At most this many pairs (a seeded choice).
        steps: Optimiser steps.
        seed: Seeds the choice of pairs and of each step's batch.
        checkpoint_every: A checkpoint every this many steps (not part of the identity).
    """

    kind: str
    settings: dict[str, Any]
    codebook_id: str
    clusters: int
    inputs: tuple[tuple[str, InputShard], ...]
    manifests: dict[str, str]
    roots: dict[str, str]
    max_utterances: int
    steps: int
    seed: int
    checkpoint_every: int = field(default=250, compare=False)

    @property
    def version_id(self) -> str:
        """The vocoder version: kind, settings, codebook, the speech-units shards as planned, the data choice, steps."""
        return fingerprint(
            {
                "kind": self.kind,
                "settings": self.settings,
                "codebook": self.codebook_id,
                "inputs": sorted([d, i.version, i.shard_id, i.fingerprint] for d, i in self.inputs),
                "max_utterances": self.max_utterances,
                "steps": self.steps,
                "seed": self.seed,
            }
        )


def produced_by(plan: VocoderPlan) -> dict[str, Any]:
    """The vocoder version's ``produced_by``: what it learned from (docs/FORMAT.md §8)."""
    speech_units = {dataset: expected.version for dataset, expected in plan.inputs}
    return {
        "kind": plan.kind,
        "settings": plan.settings,
        "codebook": plan.codebook_id,
        "clusters": plan.clusters,
        "speech_units": dict(sorted(speech_units.items())),
        "manifests": dict(sorted(plan.manifests.items())),
        "max_utterances": plan.max_utterances,
        "steps": plan.steps,
        "seed": plan.seed,
    }


@dataclass
class VocoderTrainResult:
    """What a call of :func:`train_vocoder` did (small: returned by the task)."""

    version: str
    url: str
    kind: str
    codebook_id: str
    steps: int
    resumed_from: int
    utterances: int
    rejected: dict[str, str]
    history: list[dict[str, float]]
    trained: bool


Pair = tuple[str, np.ndarray, np.ndarray]


def chosen_utterances(store: Store, plan: VocoderPlan) -> list[tuple[str, str, np.ndarray]]:
    """``(dataset, key, full-rate units)`` of the seeded choice of at most ``max_utterances`` training utterances.

    Raises:
        StaleInputError: A speech-units shard is missing or of another plan.
    """
    found: list[tuple[str, str, np.ndarray]] = []
    for dataset, expected in plan.inputs:
        checked_input(store, dataset, expected, READER)
        version = StoreVersion(store, dataset, SPEECH_UNITS, expected.version)
        found += [
            (dataset, key, units[0]) for key, units in sorted(read_speech_units(version, expected.shard_id).items())
        ]
    if len(found) > plan.max_utterances:
        picked = np.random.default_rng(plan.seed).choice(len(found), plan.max_utterances, replace=False)
        found = [found[i] for i in sorted(picked.tolist())]
    return found


def training_pairs(store: Store, plan: VocoderPlan, target: Any, workers: int = 4) -> tuple[list[Pair], dict[str, str]]:
    """The pairs (key, full-rate units, the kind's target) of the chosen utterances; the left-out ones, with why.

    ``target(wave, sample_rate, frames, settings)`` is the kind's ``Trainer.target``: a log-mel (held as float16)
    or samples (held as they come, e.g. int16).
    """
    settings = training_settings(plan.kind, plan.settings)

    def pair(dataset: str, key: str, units: np.ndarray, wave: np.ndarray) -> Pair:
        made = np.asarray(target(wave, 16_000, len(units), settings))
        return f"{dataset}/{key}", units.astype(np.int64), made.astype(np.float16) if made.dtype.kind == "f" else made

    return _pairs_of(store, plan, pair, chosen_utterances(store, plan), workers)


def _pairs_of(
    store: Store, plan: VocoderPlan, make: Any, chosen: list[tuple[str, str, np.ndarray]], workers: int = 4
) -> tuple[list[Any], dict[str, str]]:
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset, manifests in plan.manifests.items():
        rows[dataset] = ok_rows(StoreVersion(store, dataset, MANIFESTS, manifests), "utterances", ["path", "sha256"])

    def pair(item: tuple[str, str, np.ndarray]) -> Any:
        dataset, key, units = item
        row = rows[dataset].get(key)
        if row is None:
            return "not an ok utterance in the manifests"
        data = read_verified(Path(plan.roots[dataset]), (key, row["path"], row["sha256"]))
        if isinstance(data, str):
            return data
        try:
            wave = load_audio(data, min_samples=1)
        except ItemRejected as verdict:
            return str(verdict)
        return make(dataset, key, units, wave)

    pairs, rejected = [], {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item, made in zip(chosen, pool.map(pair, chosen), strict=True):
            if isinstance(made, str):
                rejected[f"{item[0]}/{item[1]}"] = made
            else:
                pairs.append(made)
    return pairs, rejected


def batch_of(seed: int, step: int, count: int, size: int) -> list[int]:
    """The pairs of one step: drawn from the seed and the step alone, so a resumed run draws the same."""
    rng = np.random.default_rng([seed, step])
    return rng.choice(count, min(size, count), replace=False).tolist()  # type: ignore[no-any-return]


def _commit_folder(version: StoreVersion, shard_id: str, folder: Path) -> None:
    with BlobWriter(version, shard_id, input_fingerprint=version.version) as writer:
        for path in sorted(folder.iterdir()):
            writer.write(path.name, {"bytes": path.read_bytes()})


def train_vocoder(store: Store, plan: VocoderPlan, *, device: str = "cpu") -> VocoderTrainResult:
    """Train (or finish, or find finished) the vocoder of ``plan``; its files end in shard ``all``."""
    version = StoreVersion(store, SHARED, VOCODERS_KIND, plan.version_id)
    if not version.needs_build(FINISHED, plan.version_id):
        return VocoderTrainResult(
            version.version, version.url, plan.kind, plan.codebook_id, plan.steps, plan.steps, 0, {}, [], trained=False
        )
    version.ensure_created(produced_by(plan))
    entry: Any = VOCODERS.entry(plan.kind)
    pairs, rejected = training_pairs(store, plan, entry.Trainer.target)
    if not pairs:
        raise NotEnoughDataError(
            f"no training utterance could be read for the vocoder ({len(rejected)} left out, e.g. "
            f"{next(iter(rejected.items()), ('-', '-'))}); check the speech-units store and the dataset roots"
        )
    latest = latest_checkpoint(version)
    trainer: Trainer
    if latest is None:
        trainer = entry.Trainer(training_settings(plan.kind, plan.settings), plan.clusters, device=device)
    else:
        trainer = entry.Trainer.resume(verified_local_copy(version, latest), device=device)
    resumed_from = trainer.step
    size = int(plan.settings.get("batch_size") or 16)
    history: list[dict[str, float]] = []
    while trainer.step < plan.steps:
        chosen = batch_of(plan.seed, trainer.step, len(pairs), size)
        metrics = trainer.train_step([(pairs[i][1], pairs[i][2]) for i in chosen])
        history.append({"step": float(trainer.step), **metrics})
        if trainer.step % plan.checkpoint_every == 0 and trainer.step < plan.steps:
            _checkpoint(version, trainer)
    with tempfile.TemporaryDirectory(prefix="im2sp-vocoder-") as folder:
        trainer.export(Path(folder), {"codebook": plan.codebook_id})
        _commit_folder(version, FINISHED, Path(folder))
    version.prune([FINISHED])  # the checkpoints served their purpose
    return VocoderTrainResult(
        version.version,
        version.url,
        plan.kind,
        plan.codebook_id,
        trainer.step,
        resumed_from,
        len(pairs),
        rejected,
        history,
        trained=True,
    )


def _checkpoint(version: StoreVersion, trainer: Trainer) -> None:
    with tempfile.TemporaryDirectory(prefix="im2sp-vocoder-step-") as folder:
        trainer.save_checkpoint(Path(folder))
        _commit_folder(version, f"step-{trainer.step:08d}", Path(folder))
    steps = [s for s in version.marker_ids() if s.startswith("step-")]
    version.prune(steps[-KEEP_CHECKPOINTS:])


def sample_preview(
    store: Store, plan: VocoderPlan, version: StoreVersion, device: str = "cpu"
) -> dict[str, Any] | None:
    """One training utterance through the finished vocoder: the log-mels of the recording and of its WAV.

    Both are :func:`im2sp_models.spectrogram.log_mel`'s, whatever the kind, so the panels compare like with like.

    The WAV is kept at ``reports/train-vocoder/<version>/<dataset>-<utterance>.wav`` (written once). None when no
    chosen utterance can be read.
    """
    import soundfile

    from im2sp_models.device import resolve_device

    folder = verified_local_copy(version, FINISHED)
    vocoder: Any = VOCODERS.load(plan.kind, folder, device=resolve_device(device))
    for dataset, key, units in chosen_utterances(store, plan)[:20]:
        recordings, _ = _pairs_of(store, plan, lambda *item: item[2:], [(dataset, key, units)])
        if not recordings:
            continue
        full, recording = recordings[0]
        wave = vocoder.synthesize(np.asarray(full, dtype=np.int64), deduplicated=False)
        buffer = io.BytesIO()
        soundfile.write(buffer, wave, vocoder.sample_rate, format="WAV", subtype="PCM_16")
        wav_key = f"reports/train-vocoder/{version.version}/{dataset}-{key}.wav"
        if not store.exists(wav_key):
            store.write_bytes(wav_key, buffer.getvalue())
        return {
            "key": f"{dataset}/{key}",
            "reference": log_mel(recording, vocoder.sample_rate),
            "resynthesized": log_mel(wave, vocoder.sample_rate),
            "wav_key": wav_key,
        }
    return None


@task(name="train-vocoder")
def train_vocoder_task(store: StoreRef, plan: VocoderPlan, device: str) -> VocoderTrainResult:
    """Prefect task around :func:`train_vocoder`; one trainer per vocoder version (a lock on its folder).

    ``device``: ``auto`` picks CUDA when present.
    """
    from im2sp_models.device import resolve_device

    opened = store.open()
    version = StoreVersion(opened, SHARED, VOCODERS_KIND, plan.version_id)
    with shard_lock(opened, version.lock_key("run")):
        return train_vocoder(opened, plan, device=resolve_device(device))
