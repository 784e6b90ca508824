"""Learning the speech-unit codebook: a frame-capped sample drawn across every shard, k-means, a committed codebook.

Memory is bounded by the cap, whatever the dataset size: each committed features shard contributes a quota
proportional to its stored frames, read with an orthogonal selection (only those rows leave the store). The
k-means itself (k-means++, Lloyd, swap refinement) is :mod:`im2sp_models.kmeans`.

The codebook's id hashes the extractor fingerprint, the dtype the sampled features were stored in and the
centroid bytes: float16 and float32 frames of the same extractor do not learn (or assign) quite the same.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from prefect import task

from im2sp_models.kmeans import load_sklearn_centroids, sample_rows, train_kmeans
from storage.blob_writer import BlobWriter
from storage.errors import MissingInputError, NotEnoughDataError
from storage.hashing import fingerprint
from storage.kinds import SHARED, SPEECH_CODEBOOK, SPEECH_FEATURES
from storage.locks import shard_lock
from storage.reader import verify_shard
from storage.store import Store, StoreRef
from storage.versions import StoreVersion, current_learned_from, current_version


@dataclass(frozen=True)
class SpeechCodebookRef:
    """A committed speech codebook: its id, URL and training facts."""

    codebook_id: str
    url: str
    clusters: int
    dim: int
    sample_frames: int
    inertia: float
    reused: bool = False


def sample_frames(store: Store, datasets: list[str], max_frames: int, seed: int) -> tuple[np.ndarray, str, str]:
    """Draw at most ``max_frames`` stored feature frames across datasets and shards, seeded.

    Returns:
        The ``(n, D)`` float32 sample, the extractor fingerprint the features came from, and the dtype they
        were stored in (``float16``; several joined by ``+`` if shards differ).
    """
    shards: list[tuple[StoreVersion, str, int]] = []
    extractors, dtypes = set(), set()
    for dataset in datasets:
        version = current_version(store, dataset, SPEECH_FEATURES)
        if version is None:
            raise MissingInputError(f"dataset {dataset!r} has no speech features; run extract-speech-features first")
        extractors.add(version.info()["produced_by"]["fingerprint"])
        for shard_id, marker in sorted(version.committed().items()):
            shards.append((version, shard_id, int(marker.extra["values_shape"][0])))
            dtypes.add(str(marker.extra.get("dtype")))
    if len(extractors) != 1:
        raise MissingInputError(
            f"datasets were featurised by different extractors {sorted(extractors)}; rerun extract-speech-features "
            "for every dataset with the configured speech.features"
        )
    picks = sample_rows([rows for _, _, rows in shards], max_frames, seed)
    parts = []
    for (version, shard_id, _), picked in zip(shards, picks, strict=True):
        if len(picked) == 0:
            continue
        group = zarr.open_group(version.store.zarr_store(version.shard_key(shard_id), read_only=True), mode="r")
        values: Any = group["values"]
        parts.extend(_read_rows(values, picked))
    if not parts:
        raise NotEnoughDataError("no stored feature frames to learn a codebook from: check the speech-features reports")
    return np.concatenate(parts), extractors.pop(), "+".join(sorted(dtypes))


def _read_rows(values: Any, picked: np.ndarray, block: int = 1 << 15) -> list[np.ndarray]:
    """Read sorted rows as float32, block by block: contiguous reads beat a per-row selection, memory stays bounded."""
    parts = []
    for start in range(0, int(values.shape[0]), block):
        lo, hi = np.searchsorted(picked, [start, start + block])
        if hi > lo:
            rows = np.asarray(values[start : min(start + block, int(values.shape[0]))])
            parts.append(rows[picked[lo:hi] - start].astype(np.float32))
    return parts


@dataclass(frozen=True)
class SpeechCodebookSettings:
    """How learn-speech-codebook trains (the ``speech`` section's k-means knobs and the device).

    Attributes:
        clusters: K, the number of speech units.
        max_frames: The most stored frames sampled for k-means.
        seed: Seeds the sample and k-means.
        niter: Lloyd iterations on the subsample.
        swap_rounds: Swap-refinement rounds after Lloyd (on the subsample).
        device: Where k-means runs.
        points_per_centroid: Frames per centroid in the subsample Lloyd and the swaps run on.
        full_iterations: Lloyd iterations over every sampled frame at the end.
    """

    clusters: int
    max_frames: int
    seed: int = 0
    niter: int = 8
    swap_rounds: int = 3
    device: str = "cpu"
    points_per_centroid: int = 256
    full_iterations: int = 1


#: The settings that train_kmeans takes and meta.json records, in meta.json's order.
KMEANS_KNOBS = ("seed", "niter", "swap_rounds", "points_per_centroid", "full_iterations")


def codebook_inputs(store: Store, datasets: list[str], settings: SpeechCodebookSettings) -> str:
    """Fingerprint of what a codebook is learned from: every current features shard and the k-means settings.

    Each shard counts by its id, its inputs' fingerprint and its extractor; ``device`` is left out (it does not
    change the centroids). Empty when a dataset has no features yet (:func:`sample_frames` then says so).
    """
    shards = []
    for dataset in datasets:
        version = current_version(store, dataset, SPEECH_FEATURES)
        if version is None:
            return ""
        for shard_id, marker in sorted(version.committed().items()):
            shards.append([dataset, version.version, shard_id, marker.input_fingerprint, marker.model_fingerprint])
    knobs = {name: getattr(settings, name) for name in ("clusters", "max_frames", *KMEANS_KNOBS)}
    return fingerprint({"shards": shards, "settings": knobs})


def reusable_speech_codebook(store: Store, inputs: str) -> SpeechCodebookRef | None:
    """The current codebook when it was learned from exactly ``inputs`` and is intact, else None."""
    found = current_learned_from(store, SPEECH_CODEBOOK, inputs, "extractor_fingerprint")
    if found is None:
        return None
    version, made = found
    dim, frames, inertia = int(made["dim"]), int(made["sample_frames"]), float(made["inertia"])
    return SpeechCodebookRef(version.version, version.url, int(made["clusters"]), dim, frames, inertia, reused=True)


def learn_speech_codebook(store: Store, datasets: list[str], settings: SpeechCodebookSettings) -> SpeechCodebookRef:
    """Train k-means on a capped sample, commit the centroids under their fingerprint and publish them.

    A current codebook learned from the same features shards with the same settings is returned as it is: a
    rerun with nothing new to learn from neither samples, trains nor writes.
    """
    inputs = codebook_inputs(store, datasets, settings)
    reused = reusable_speech_codebook(store, inputs)
    if reused is not None:
        return reused
    clusters = settings.clusters
    frames, extractor, feature_dtype = sample_frames(store, datasets, settings.max_frames, settings.seed)
    if len(frames) < clusters:
        raise NotEnoughDataError(
            f"{len(frames)} frames cannot train {clusters} clusters; lower speech.clusters or raise "
            "speech.sample_fraction / speech.max_frames (or add speech)"
        )
    knobs: dict[str, Any] = {name: getattr(settings, name) for name in KMEANS_KNOBS}
    centroids, inertia = train_kmeans(frames, clusters, device=settings.device, **knobs)
    meta: dict[str, Any] = {
        "clusters": clusters,
        "dim": int(frames.shape[1]),
        "sample_frames": len(frames),
        "inertia": inertia,
        "extractor_fingerprint": extractor,
        "feature_dtype": feature_dtype,
        **knobs,
        "inputs": inputs,
    }
    return save_speech_codebook(store, centroids, meta)


def save_speech_codebook(store: Store, centroids: np.ndarray, meta: dict[str, Any]) -> SpeechCodebookRef:
    """Commit centroids + metadata under ``_shared/speech-codebook/<id>`` and make them current.

    The id hashes the extractor fingerprint, ``meta["feature_dtype"]`` (the dtype of the frames it was learned
    from; unknown, and left out, for imported codebooks) and the centroid bytes, so the same codebook is stored
    once.
    """
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(centroids, dtype=np.float32))
    extractor = str(meta.get("extractor_fingerprint"))
    named: dict[str, Any] = {"extractor": extractor, "centroids": hashlib.sha256(buffer.getvalue()).hexdigest()}
    if meta.get("feature_dtype"):
        named["feature_dtype"] = meta["feature_dtype"]
    codebook_id = fingerprint(named)
    version = StoreVersion(store, SHARED, SPEECH_CODEBOOK, codebook_id)
    version.ensure_created(meta)
    with shard_lock(store, version.lock_key("all")):  # a concurrent run waits, then finds it committed
        if version.needs_build("all", extractor):  # no marker, or flagged by `im2sp verify`
            with BlobWriter(version, "all", input_fingerprint=extractor, model_fingerprint=codebook_id) as writer:
                writer.write("centroids.npy", {"bytes": buffer.getvalue()})
                writer.write("meta.json", {"bytes": json.dumps(meta, indent=1).encode()})
    version.publish(["all"])
    return SpeechCodebookRef(
        codebook_id,
        version.url,
        int(centroids.shape[0]),
        int(centroids.shape[1]),
        int(meta.get("sample_frames") or 0),
        float(meta.get("inertia") or 0.0),
    )


def import_kmeans(store: Store, path: Path, extractor_fingerprint: str, *, trust_pickle: bool) -> SpeechCodebookRef:
    """Turn a GSLM/fairseq ``km.bin`` (a pickled scikit-learn k-means) into a speech codebook.

    Raises:
        CheckpointError: Without ``trust_pickle``, or when the file holds no ``cluster_centers_``
            (:func:`im2sp_models.kmeans.load_sklearn_centroids`).
    """
    centres = load_sklearn_centroids(path, trust_pickle=trust_pickle)
    meta = {
        "clusters": int(centres.shape[0]),
        "dim": int(centres.shape[1]),
        "sample_frames": None,
        "inertia": None,
        "extractor_fingerprint": extractor_fingerprint,
        "imported_from": path.name,
        "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    return save_speech_codebook(store, centres.astype(np.float32), meta)


def current_speech_codebook(store: Store) -> tuple[str, np.ndarray, dict[str, Any]] | None:
    """Return id, centroids and metadata of the current speech codebook, or None."""
    version = current_version(store, SHARED, SPEECH_CODEBOOK)
    if version is None:
        return None
    verify_shard(version, "all")  # a flipped byte in the centroids would silently change every unit
    prefix = version.shard_key("all")
    centroids = np.load(io.BytesIO(store.read_bytes(f"{prefix}/centroids.npy")), allow_pickle=False)
    return version.version, centroids, json.loads(store.read_bytes(f"{prefix}/meta.json"))


@task(name="learn-kmeans")
def learn_speech_codebook_task(
    store: StoreRef, datasets: list[str], settings: SpeechCodebookSettings
) -> SpeechCodebookRef:
    """Prefect task around :func:`learn_speech_codebook`."""
    return learn_speech_codebook(store.open(), datasets, settings)
