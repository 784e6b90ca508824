"""Extracting speech features for one shard of utterances into a ragged Zarr store (plain function + task).

``keep: all`` stores every frame (re-clustering needs no recomputation); ``keep: sample`` stores only a
seeded, per-utterance random fraction of the frames — the k-means sample — at a fraction of the bytes.
Either way the marker's ``extra.frames`` records every utterance's full frame count.

Length bucketing: a shard's utterances are computed longest first, ordered by the lengths their file headers
declare (:func:`longest_first`), so each model batch holds utterances of nearly one length and pads little;
results are then written in the plan's order, so a shard's stored rows, rejections and marker are laid out as
if computed in plan order. Batching changes features by float rounding at most, so it names no version.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile
from prefect import task

from im2sp_models.audio import CHUNK_SECONDS, SAMPLE_RATE, load_audio
from im2sp_models.errors import ItemRejected
from im2sp_models.speech_features import FeatureExtractor
from storage.kinds import SPEECH_FEATURES
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from storage.zarr_writers import ZarrRaggedWriter
from tasks.jobs import ShardJob, ShardOutcome, claimed, read_verified
from tasks.models import ExtractorRef, extractor_for
from tasks.prefetch import loaded_batches

#: Utterances handed to the extractor at once, in model batches: the extractor sorts them by length before
#: batching, so a window of several batches pads far less than batches taken in plan order (C3: plan-order
#: batches of 8 utterances of 2-6 s cost the HuBERT transformer ~15 % in padding on the CPU). Shards come
#: longest first (:func:`longest_first`), so a window's utterances are already of nearly one length.
SORT_WINDOW = 8
#: At most this much audio (16 kHz samples: 1,600 s) is handed to the extractor at once, whatever the batch size:
#: the window's waveforms (~100 MB as float32) and HuBERT-Base features (~250 MB) stay bounded when clips are
#: long or a GPU batch is large (64 × 8 clips of 100 s would otherwise hold ~8 GB of features).
WINDOW_SAMPLES = 1_600 * 16_000

T = TypeVar("T")


@dataclass(frozen=True)
class ExtractSettings:
    """How extract-speech-features runs each shard (the ``speech`` and ``sharding`` sections' knobs).

    Attributes:
        keep: ``all`` stores every frame; ``sample`` only a seeded ``fraction`` of each utterance's frames.
        fraction: The share of frames ``keep: sample`` stores.
        seed: Seeds the frames ``keep: sample`` stores.
        batch_size: Utterances per model batch.
        io_workers: Threads that read and decode audio.
        chunk_seconds: Long utterances are computed in chunks of this many seconds.
    """

    keep: str = "sample"
    fraction: float = 0.1
    seed: int = 0
    batch_size: int = 8
    io_workers: int = 4
    chunk_seconds: float = CHUNK_SECONDS


def window_batches(
    pool: ThreadPoolExecutor,
    load: Callable[[T], tuple[str, np.ndarray | str]],
    items: Iterable[T],
    batch_size: int,
    reject: Callable[[str, str], object],
    loaders: int,
) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Decoded utterances in windows of ``SORT_WINDOW`` model batches, each ended once it holds ``WINDOW_SAMPLES``.

    The next window is decoded (by ``loaders`` threads) while the extractor computes this one, up to the same
    count and audio, so I/O overlaps compute and about two windows of waveforms are held (each at most
    ``WINDOW_SAMPLES`` plus one clip, and the read-ahead at most that plus ``loaders`` clips).
    """
    size = batch_size * SORT_WINDOW
    return loaded_batches(
        pool, load, items, size, reject, weight=len, max_weight=WINDOW_SAMPLES, window=size, loaders=loaders
    )


def sampled_frames(key: str, frames: int, fraction: float, seed: int) -> np.ndarray:
    """Indices of the frames ``keep: sample`` stores: each frame with probability ``fraction``, seeded per item."""
    state = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:16], 16)
    return np.flatnonzero(np.random.default_rng(state).random(frames) < fraction)


def kept_frames(key: str, features: np.ndarray, settings: ExtractSettings) -> tuple[int, np.ndarray]:
    """An utterance's frame count and the frames ``keep`` stores, as the store's dtype."""
    total = len(features)
    if settings.keep == "sample":
        features = features[sampled_frames(key, total, settings.fraction, settings.seed)]
    return total, features.astype(FEATURE_DTYPE)


def features_of(extractor: FeatureExtractor, waveforms: list[np.ndarray], chunk_seconds: float) -> list[np.ndarray]:
    """Features of whole utterances, long ones computed in non-overlapping chunks and joined by the extractor.

    The extractor cuts the chunks itself: a normalising one (HuBERT Large) normalises the whole utterance first.
    """
    return extractor.extract(waveforms, chunk_seconds=chunk_seconds)


def load_item(root: Path, item: tuple[str, str, str], min_samples: int) -> tuple[str, np.ndarray | str]:
    """Read, verify against the manifest hash and decode one utterance; a string result is the reject reason."""
    key = item[0]
    data = read_verified(root, item)
    if isinstance(data, str):
        return key, data
    try:
        return key, load_audio(data, min_samples=min_samples)
    except ItemRejected as verdict:
        return key, str(verdict)


#: Features are stored as float16 (cast once, as the writer would, so a shard's held results take half the memory).
FEATURE_DTYPE = "float16"


def declared_samples(root: Path, item: tuple[str, str, str]) -> int:
    """16 kHz samples an item's audio header declares (0 when the header cannot be read: it sorts last).

    Only the header is read, and nothing is verified: this orders work, the full read decides what is stored.
    """
    try:
        info = soundfile.info(str(root / item[1]))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        return 0
    frames, rate = int(info.frames), int(info.samplerate)
    return math.ceil(frames * SAMPLE_RATE / rate) if rate > 0 else 0


def longest_first(
    pool: ThreadPoolExecutor, root: Path, items: Iterable[tuple[str, str, str]]
) -> list[tuple[int, tuple[str, str, str]]]:
    """``(plan position, item)`` pairs ordered by declared length, longest first (ties keep the plan order)."""
    listed = list(items)
    lengths = list(pool.map(partial(declared_samples, root), listed))
    order = sorted(range(len(listed)), key=lambda position: (-lengths[position], position))
    return [(position, listed[position]) for position in order]


def computed_longest_first(
    pool: ThreadPoolExecutor,
    root: Path,
    extractor: FeatureExtractor,
    items: Iterable[tuple[str, str, str]],
    batch_size: int,
    chunk_seconds: float,
    loaders: int,
) -> Iterator[tuple[int, np.ndarray | str]]:
    """Every item's features, or its reject reason, by plan position: computed in length buckets, longest first.

    Windows of decoded utterances (:func:`window_batches`) are taken from the length-sorted shard, so the
    extractor's padded batches hold utterances of nearly one length, however the plan ordered them.
    """
    load = partial(load_item, root, min_samples=extractor.min_samples)

    def load_positioned(entry: tuple[int, tuple[str, str, str]]) -> tuple[str, np.ndarray | str]:
        # The plan position stands in for the key (keys may repeat in a shard; the writer rejects the repeat).
        return str(entry[0]), load(entry[1])[1]

    rejected: list[tuple[int, str]] = []
    ordered = longest_first(pool, root, items)
    for window in window_batches(
        pool, load_positioned, ordered, batch_size, lambda k, r: rejected.append((int(k), r)), loaders
    ):
        yield from rejected
        rejected.clear()
        computed = features_of(extractor, [waveform for _, waveform in window], chunk_seconds)
        yield from ((int(position), features) for (position, _), features in zip(window, computed, strict=True))
    yield from rejected


def extract_shard(
    store: Store,
    root: Path,
    job: ShardJob,
    version_id: str,
    ref: ExtractorRef,
    settings: ExtractSettings | None = None,
) -> ShardOutcome:
    """Extract one shard unless it is committed for the same inputs; commit it with its rejects.

    Args:
        store: The open store.
        root: The dataset's root folder (job items are relative to it).
        job: The shard's items and input fingerprint.
        version_id: The features version written into.
        ref: The extractor.
        settings: How to run it (default: :class:`ExtractSettings`'s defaults).
    """
    settings = settings or ExtractSettings()
    version = StoreVersion(store, job.dataset, SPEECH_FEATURES, version_id)
    with claimed(version, job) as skipped:
        if skipped is not None:
            return skipped
        extractor = extractor_for(ref)
        keep, fraction, io_workers = settings.keep, settings.fraction, settings.io_workers
        kept = partial(kept_frames, settings=settings)
        frames: dict[str, int] = {}
        with (
            ZarrRaggedWriter(
                version,
                job.shard_id,
                input_fingerprint=job.input_fingerprint,
                model_fingerprint=extractor.fingerprint,
                row_shape=(extractor.dim,),
                dtype=FEATURE_DTYPE,
                extra={"keep": keep, "fraction": fraction if keep == "sample" else 1.0, "frames": frames},
            ) as writer,
            ThreadPoolExecutor(max_workers=io_workers) as pool,
        ):
            # Held until the shard is computed, then written in plan order (the writer holds it until commit too).
            results: dict[int, tuple[int, np.ndarray] | str] = {}
            for position, result in computed_longest_first(
                pool, root, extractor, job.items, settings.batch_size, settings.chunk_seconds, io_workers
            ):
                results[position] = result if isinstance(result, str) else kept(job.items[position][0], result)
            for position, (key, _, _) in enumerate(job.items):
                outcome = results.pop(position)
                if isinstance(outcome, str):
                    writer.reject(key, outcome)
                elif writer.write(key, {"values": outcome[1]}):
                    frames[key] = outcome[0]
        return ShardOutcome.of(version, job, built=True)


@task(name="extract-features-shard", task_run_name="features-{job.dataset}-{job.shard_id}")
def extract_shard_task(
    store: StoreRef, root: str, job: ShardJob, version_id: str, ref: ExtractorRef, settings: ExtractSettings
) -> ShardOutcome:
    """Prefect task around :func:`extract_shard`."""
    return extract_shard(store.open(), Path(root), job, version_id, ref, settings)
