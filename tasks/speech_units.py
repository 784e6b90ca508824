"""Unitizing one shard of utterances: exact nearest-centroid assignment with faiss (plain function + task).

With ``keep: all`` the stored features are read back; with ``keep: sample`` they were never stored, so the
task extracts and assigns in one pass, in the same longest-first length buckets as extract-speech-features,
and only units are written. The dtype of the frames assigned (float16 as stored, float32 as computed) moves
a few nearest centroids, so it is part of the units' version id.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task

from im2sp_models.kmeans import assign, build_index
from storage.errors import Im2SpError
from storage.hashing import fingerprint
from storage.keyed_cache import KeyedCache
from storage.kinds import REBUILT_BY, SHARED, SPEECH_CODEBOOK, SPEECH_FEATURES, SPEECH_UNITS
from storage.lineage import InputShard, checked_input, unchanged_since
from storage.reader import iter_ragged, verify_shard
from storage.speech_units_writer import SpeechUnitsWriter
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from tasks.jobs import ShardJob, ShardOutcome, claimed
from tasks.models import ExtractorRef, extractor_for
from tasks.speech_features import computed_longest_first

#: The dtype extract-speech-features stores frames in (``tasks.speech_features.extract_shard``); checked against
#: each features shard's marker before its frames are assigned.
STORED_FEATURE_DTYPE = "float16"
#: The dtype of frames computed by an extractor, as ``keep: sample`` assigns them.
COMPUTED_FEATURE_DTYPE = "float32"


def assigned_dtype(keep: str) -> str:
    """The dtype frames are assigned in: as stored (``keep: all``), or as the extractor computed them."""
    return STORED_FEATURE_DTYPE if keep == "all" else COMPUTED_FEATURE_DTYPE


def units_version_id(features_id: str, codebook_id: str, feature_dtype: str) -> str:
    """Version id of speech units: the features version, the codebook and the dtype the frames were assigned in."""
    return fingerprint({"features": features_id, "codebook": codebook_id, "feature_dtype": feature_dtype})


@dataclass(frozen=True)
class UnitSource:
    """Where a shard's features come from: a stored features version, or the extractor to recompute them.

    ``feature_dtype``: the dtype frames are assigned in (default: :func:`assigned_dtype` of ``keep``).
    """

    features_version: str
    keep: str
    extractor: ExtractorRef
    chunk_seconds: float = 100.0
    feature_dtype: str = ""

    def __post_init__(self) -> None:
        if not self.feature_dtype:
            object.__setattr__(self, "feature_dtype", assigned_dtype(self.keep))


def features_input(job: ShardJob, source: UnitSource) -> InputShard:
    """The stored features shard a ``keep: all`` job assigns: the same planned shard, so the same fingerprint."""
    return InputShard(SPEECH_FEATURES, source.features_version, job.shard_id, job.input_fingerprint)


@dataclass(frozen=True)
class UnitCodebook:
    """The speech codebook a shard's frames are assigned to: its id and its number of centroids."""

    codebook_id: str
    clusters: int


@dataclass(frozen=True)
class UnitizeSettings:
    """How unitize-speech runs each shard when it extracts frames itself (``keep: sample``).

    Attributes:
        batch_size: Utterances per extractor batch.
        io_workers: Threads that read and decode audio.
    """

    batch_size: int = 8
    io_workers: int = 4


#: Faiss indexes over speech codebooks' centroids, built once per process (the 4 most recent codebooks).
ASSIGNERS: KeyedCache[tuple[str, str], Any] = KeyedCache(4)


def assigner(store: Store, codebook_id: str) -> Any:
    """A faiss exact L2 index over a codebook's centroids, built once per process."""

    def build() -> Any:
        codebook = StoreVersion(store, SHARED, SPEECH_CODEBOOK, codebook_id)
        verify_shard(codebook, "all")  # a flipped byte in the centroids would silently change every unit
        prefix = codebook.shard_key("all")
        centroids = np.load(io.BytesIO(store.read_bytes(f"{prefix}/centroids.npy")), allow_pickle=False)
        return build_index(centroids)

    return ASSIGNERS.get((store.url, codebook_id), build)


def non_finite_reason(features: np.ndarray) -> str | None:
    """Why features cannot be assigned (faiss gives -1 for NaN/Inf), or None when they can.

    Checked as float16, the dtype extract-speech-features stores, and worded as its rejection: with
    ``keep: sample`` the features are recomputed here, and must be refused exactly where they were there
    (finite float32 frames from absurdly loud audio overflow float16).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        finite = bool(np.isfinite(np.asarray(features).astype(np.float16)).all())
    return None if finite else "values contain NaN or Inf (as float16)"


def units_or_reason(index: Any, features: np.ndarray) -> np.ndarray | str:
    """An utterance's units, or why its features cannot be assigned."""
    reason = non_finite_reason(features)
    return assign(index, features) if reason is None else reason


def _write(writer: SpeechUnitsWriter, key: str, outcome: np.ndarray | str) -> None:
    if isinstance(outcome, str):
        writer.reject(key, outcome)
    else:
        writer.write(key, {"units": outcome})


def unitize_shard(
    store: Store,
    root: Path,
    job: ShardJob,
    version_id: str,
    source: UnitSource,
    codebook: UnitCodebook,
    settings: UnitizeSettings | None = None,
) -> ShardOutcome:
    """Write one shard's units (full rate + deduplicated) unless it is committed for the same inputs.

    Args:
        store: The open store.
        root: The dataset's root folder (job items are relative to it).
        job: The shard's items and input fingerprint.
        version_id: The speech-units version written into.
        source: Where the frames come from.
        codebook: The centroids they are assigned to.
        settings: How to extract frames (``keep: sample``; default: :class:`UnitizeSettings`'s defaults).
    """
    settings = settings or UnitizeSettings()
    version = StoreVersion(store, job.dataset, SPEECH_UNITS, version_id)
    with claimed(version, job) as skipped:
        if skipped is not None:
            return skipped
        index = assigner(store, codebook.codebook_id)
        with SpeechUnitsWriter(
            version,
            job.shard_id,
            input_fingerprint=job.input_fingerprint,
            model_fingerprint=codebook.codebook_id,
            codebook_size=codebook.clusters,
        ) as writer:
            if source.keep == "all":
                features = StoreVersion(store, job.dataset, SPEECH_FEATURES, source.features_version)
                expected = features_input(job, source)
                upstream = checked_input(store, job.dataset, expected, REBUILT_BY[SPEECH_UNITS])
                stored = upstream.extra.get("dtype")
                if stored != source.feature_dtype:  # the units' version id names the dtype they were assigned in
                    raise Im2SpError(
                        f"{features.url}: shard {job.shard_id} stores {stored} frames, the units version expects "
                        f"{source.feature_dtype}; rerun extract-speech-features, then unitize-speech"
                    )
                for key, values in iter_ragged(features, job.shard_id):
                    _write(writer, key, units_or_reason(index, values))
                for rejection in upstream.rejected:
                    writer.reject(rejection.key, rejection.reason)
                unchanged_since(store, job.dataset, {expected: upstream}, REBUILT_BY[SPEECH_UNITS])
            else:
                extractor = extractor_for(source.extractor)
                # Computed longest first, as extract-speech-features computes them; a shard's units are small, so
                # they are held and written in plan order.
                units: dict[int, np.ndarray | str] = {}
                with ThreadPoolExecutor(max_workers=settings.io_workers) as pool:
                    for position, result in computed_longest_first(
                        pool, root, extractor, job.items, settings.batch_size, source.chunk_seconds, settings.io_workers
                    ):
                        units[position] = result if isinstance(result, str) else units_or_reason(index, result)
                for position, (key, _, _) in enumerate(job.items):
                    _write(writer, key, units.pop(position))
        return ShardOutcome.of(version, job, built=True)


@task(name="unitize-shard", task_run_name="units-{job.dataset}-{job.shard_id}")
def unitize_shard_task(
    store: StoreRef,
    root: str,
    job: ShardJob,
    version_id: str,
    source: UnitSource,
    codebook: UnitCodebook,
    settings: UnitizeSettings,
) -> ShardOutcome:
    """Prefect task around :func:`unitize_shard`."""
    return unitize_shard(store.open(), Path(root), job, version_id, source, codebook, settings)
