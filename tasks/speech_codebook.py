"""Learning the speech-unit codebook: faiss k-means on a frame-capped sample drawn across every shard.

Memory is bounded by the cap, whatever the dataset size: each committed features shard contributes a quota
proportional to its stored frames, read with an orthogonal selection (only those rows leave the store).
faiss normally subsamples to 256 points per centroid; we train on the whole capped sample instead
(``max_points_per_centroid`` raised), which the cap already keeps affordable.

Seeding is greedy k-means++; after Lloyd, swap rounds move the centroids that cost least to lose (their
frames' increase in distance if reassigned to the second-nearest centroid) into the clusters of largest
squared error, and keep the result only if the inertia drops (C1: Lloyd alone stops in a local minimum).

The codebook's id hashes the extractor fingerprint, the dtype the sampled features were stored in and the
centroid bytes: float16 and float32 frames of the same extractor do not learn (or assign) quite the same.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from prefect import task

from im2sp_models.errors import CheckpointError
from storage.blob_writer import BlobWriter
from storage.errors import MissingInputError, NotEnoughDataError
from storage.hashing import fingerprint
from storage.kinds import SHARED, SPEECH_CODEBOOK, SPEECH_FEATURES
from storage.locks import shard_lock
from storage.reader import verify_shard
from storage.store import Store
from storage.versions import StoreVersion, current_version


@dataclass(frozen=True)
class SpeechCodebookRef:
    """A committed speech codebook: its id, URL and training facts."""

    codebook_id: str
    url: str
    clusters: int
    dim: int
    sample_frames: int
    inertia: float


def sample_frames(store: Store, datasets: list[str], max_frames: int, seed: int) -> tuple[np.ndarray, str, str]:
    """Draw at most ``max_frames`` stored feature frames across datasets and shards, seeded.

    Returns:
        The ``(n, D)`` float32 sample, the extractor fingerprint the features came from, and the dtype they
        were stored in (``float16``; several joined by ``+`` if shards differ).
    """
    shards: list[tuple[StoreVersion, str, int]] = []
    extractors = set()
    dtypes = set()
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
    total = sum(rows for _, _, rows in shards)
    rng = np.random.default_rng(seed)
    parts = []
    for version, shard_id, rows in shards:
        quota = rows if total <= max_frames else int(max_frames * rows / total)
        if quota == 0:
            continue
        group = zarr.open_group(version.store.zarr_store(version.shard_key(shard_id), read_only=True), mode="r")
        values: Any = group["values"]
        picked = np.sort(rng.choice(rows, size=quota, replace=False))
        parts.extend(_read_rows(values, picked))
    if not parts:
        raise NotEnoughDataError("no stored feature frames to learn a codebook from: check the speech-features reports")
    return np.concatenate(parts), extractors.pop(), "+".join(sorted(dtypes))


def kmeans_plus_plus(frames: np.ndarray, clusters: int, seed: int, *, points_per_cluster: int = 32) -> np.ndarray:
    """Greedy k-means++ seeding (each step keeps the best of 2 + ln K candidates) on a subsample.

    The subsample holds ``points_per_cluster`` × K frames: each seeding step reads every subsample point, so
    its size sets the cost (32 per cluster: about 1.5 s for K = 200, 768-d, on 2 cores).

    faiss seeds k-means with random points, which on clustered data leaves some centroids sharing a cluster
    while others straddle two; Lloyd iterations do not undo that. Seeding with k-means++ does (C1 benchmark).
    """
    rng = np.random.default_rng(seed)
    max_points = points_per_cluster * clusters
    points = frames if len(frames) <= max_points else frames[np.sort(rng.choice(len(frames), max_points, False))]
    points = np.ascontiguousarray(points, dtype=np.float32)
    norms = np.einsum("ij,ij->i", points, points)
    trials = 2 + int(np.log(clusters))
    centres = np.empty((clusters, points.shape[1]), dtype=np.float32)
    first = int(rng.integers(len(points)))
    centres[0] = points[first]
    closest = np.maximum(norms - 2.0 * points @ points[first] + norms[first], 0.0)
    for index in range(1, clusters):
        total = float(closest.sum())
        if total <= 0.0:  # fewer distinct points than clusters: repeat points, k-means copes
            candidates = rng.integers(len(points), size=trials)
        else:
            candidates = np.searchsorted(np.cumsum(closest), rng.random(trials) * total).clip(0, len(points) - 1)
        distances = norms[:, None] - 2.0 * points @ points[candidates].T + norms[candidates][None, :]
        merged = np.minimum(closest[:, None], np.maximum(distances, 0.0))
        best = int(np.argmin(merged.sum(axis=0)))
        closest = merged[:, best]
        centres[index] = points[candidates[best]]
    return centres


def _read_rows(values: Any, picked: np.ndarray, block: int = 1 << 15) -> list[np.ndarray]:
    """Read sorted rows as float32, block by block: contiguous reads beat a per-row selection, memory stays bounded."""
    parts = []
    for start in range(0, int(values.shape[0]), block):
        lo, hi = np.searchsorted(picked, [start, start + block])
        if hi > lo:
            rows = np.asarray(values[start : min(start + block, int(values.shape[0]))])
            parts.append(rows[picked[lo:hi] - start].astype(np.float32))
    return parts


def _nearest_two(frames: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    distances, ids = index.search(frames, min(2, len(centroids)))
    return np.asarray(distances, dtype=np.float64), np.asarray(ids, dtype=np.int64)


def swap_refine(
    frames: np.ndarray,
    centroids: np.ndarray,
    lloyd: Any,
    *,
    rounds: int,
    seed: int,
) -> tuple[np.ndarray, float]:
    """Improve a Lloyd solution by swap rounds; return the centroids and their inertia over ``frames``.

    Each round removes the K/20 centroids whose loss costs least, re-seeds them at random frames of the
    K/20 clusters with the largest squared error, runs ``lloyd(centroids)`` and keeps the result only if
    the inertia drops; the first round that does not improve ends the search.
    """
    rng = np.random.default_rng(seed)
    clusters = len(centroids)
    distances, ids = _nearest_two(frames, centroids)
    inertia = float(distances[:, 0].sum())
    moves = max(1, clusters // 20)
    for _ in range(rounds if clusters > 2 * moves else 0):
        loss = np.bincount(ids[:, 0], weights=distances[:, 1] - distances[:, 0], minlength=clusters)
        error = np.bincount(ids[:, 0], weights=distances[:, 0], minlength=clusters)
        removed = np.argsort(loss, kind="stable")[:moves]
        split = [int(k) for k in np.argsort(-error, kind="stable") if k not in set(removed.tolist())][:moves]
        trial = centroids.copy()
        for target, source in zip(removed, split, strict=True):
            trial[target] = frames[rng.choice(np.flatnonzero(ids[:, 0] == source))]
        trial = np.asarray(lloyd(trial), dtype=np.float32)
        trial_distances, trial_ids = _nearest_two(frames, trial)
        trial_inertia = float(trial_distances[:, 0].sum())
        if trial_inertia >= inertia:
            break
        centroids, distances, ids, inertia = trial, trial_distances, trial_ids, trial_inertia
    return centroids, inertia


def learn_speech_codebook(
    store: Store,
    datasets: list[str],
    *,
    clusters: int,
    max_frames: int,
    seed: int,
    niter: int = 8,
    swap_rounds: int = 1,
    device: str = "cpu",
) -> SpeechCodebookRef:
    """Train k-means on a capped sample, commit the centroids under their fingerprint and publish them."""
    import faiss

    frames, extractor, feature_dtype = sample_frames(store, datasets, max_frames, seed)
    if len(frames) < clusters:
        raise NotEnoughDataError(
            f"{len(frames)} frames cannot train {clusters} clusters; lower speech.clusters or raise "
            "speech.sample_fraction / speech.max_frames (or add speech)"
        )

    # faiss-cpu (the default install) has no GPU code: device cuda trains on the CPU there (the [gpu] extra).
    on_gpu = device == "cuda" and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0

    def lloyd(init: np.ndarray, iterations: int = niter) -> np.ndarray:
        kmeans = faiss.Kmeans(
            frames.shape[1],
            clusters,
            niter=iterations,
            seed=seed,
            gpu=on_gpu,
            verbose=False,
            max_points_per_centroid=len(frames) // clusters + 1,
        )
        kmeans.train(frames, init_centroids=init)
        return np.asarray(kmeans.centroids, dtype=np.float32)

    centroids = lloyd(kmeans_plus_plus(frames, clusters, seed))
    centroids, inertia = swap_refine(
        frames, centroids, partial(lloyd, iterations=max(1, niter // 2)), rounds=swap_rounds, seed=seed
    )
    meta: dict[str, Any] = {
        "clusters": clusters,
        "dim": int(frames.shape[1]),
        "sample_frames": len(frames),
        "inertia": inertia,
        "extractor_fingerprint": extractor,
        "feature_dtype": feature_dtype,
        "seed": seed,
        "niter": niter,
        "swap_rounds": swap_rounds,
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
    """Turn a GSLM/fairseq ``km.bin`` (a pickled scikit-learn k-means, joblib format) into a speech codebook.

    Raises:
        CheckpointError: Without ``trust_pickle`` (unpickling runs code from the file), or when the file holds
            no ``cluster_centers_``.
    """
    if not trust_pickle:
        raise CheckpointError(
            f"{path} is a pickle: loading it runs code from the file. Pass --trust-pickle only if you trust its source"
        )
    import joblib

    try:
        model = joblib.load(path)
    except Exception as error:  # unpickling can raise anything the file's code raises
        raise CheckpointError(f"{path}: cannot be unpickled as a k-means model ({error})") from error
    centres = getattr(model, "cluster_centers_", None)
    if not isinstance(centres, np.ndarray) or centres.ndim != 2:
        raise CheckpointError(f"{path}: no cluster_centers_ array (is it a scikit-learn k-means?)")
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
    store_url: str,
    storage_options: dict[str, Any] | None,
    datasets: list[str],
    clusters: int,
    max_frames: int,
    seed: int,
    niter: int,
    swap_rounds: int,
    device: str,
) -> SpeechCodebookRef:
    """Prefect task around :func:`learn_speech_codebook`."""
    return learn_speech_codebook(
        Store(store_url, storage_options),
        datasets,
        clusters=clusters,
        max_frames=max_frames,
        seed=seed,
        niter=niter,
        swap_rounds=swap_rounds,
        device=device,
    )
