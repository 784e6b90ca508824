"""Extracting speech features for one shard of utterances into a ragged Zarr store (plain function + task).

``keep: all`` stores every frame (re-clustering needs no recomputation); ``keep: sample`` stores only a
seeded, per-utterance random fraction of the frames — the k-means sample — at a fraction of the bytes.
Either way the marker's ``extra.frames`` records every utterance's full frame count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from prefect import task

from im2sp_models.audio import CHUNK_SECONDS, load_audio
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
#: batches of 8 utterances of 2-6 s cost the HuBERT transformer ~15 % in padding on the CPU).
SORT_WINDOW = 8
#: At most this much audio (16 kHz samples: 1,600 s) is handed to the extractor at once, whatever the batch size:
#: the window's waveforms (~100 MB as float32) and HuBERT-Base features (~250 MB) stay bounded when clips are
#: long or a GPU batch is large (64 × 8 clips of 100 s would otherwise hold ~8 GB of features).
WINDOW_SAMPLES = 1_600 * 16_000


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
    load: Callable[[tuple[str, str, str]], tuple[str, np.ndarray | str]],
    items: Iterable[tuple[str, str, str]],
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
        keep, fraction, seed = settings.keep, settings.fraction, settings.seed
        io_workers = settings.io_workers
        frames: dict[str, int] = {}
        with (
            ZarrRaggedWriter(
                version,
                job.shard_id,
                input_fingerprint=job.input_fingerprint,
                model_fingerprint=extractor.fingerprint,
                row_shape=(extractor.dim,),
                dtype="float16",
                extra={"keep": keep, "fraction": fraction if keep == "sample" else 1.0, "frames": frames},
            ) as writer,
            ThreadPoolExecutor(max_workers=io_workers) as pool,
        ):
            load = partial(load_item, root, min_samples=extractor.min_samples)
            for batch in window_batches(pool, load, job.items, settings.batch_size, writer.reject, io_workers):
                computed = features_of(extractor, [waveform for _, waveform in batch], settings.chunk_seconds)
                for (key, _), features in zip(batch, computed, strict=True):
                    total = len(features)
                    if keep == "sample":
                        features = features[sampled_frames(key, total, fraction, seed)]
                    if writer.write(key, {"values": features}):
                        frames[key] = total
        return ShardOutcome.of(version, job, built=True)


@task(name="extract-features-shard", task_run_name="features-{job.dataset}-{job.shard_id}")
def extract_shard_task(
    store: StoreRef, root: str, job: ShardJob, version_id: str, ref: ExtractorRef, settings: ExtractSettings
) -> ShardOutcome:
    """Prefect task around :func:`extract_shard`."""
    return extract_shard(store.open(), Path(root), job, version_id, ref, settings)
