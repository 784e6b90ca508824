"""K-means for the speech-unit codebook: k-means++ seeding, faiss Lloyd, swap refinement, nearest-centroid assignment.

Arrays in, arrays out: sampling frames from the store and committing centroids belong to the tasks. faiss seeds
with random points, which on clustered data leaves some centroids sharing a cluster while others straddle two;
Lloyd iterations do not undo that, so seeding is greedy k-means++. After Lloyd, swap rounds move the centroids
that cost least to lose into the clusters of largest squared error, and keep the result only if the inertia
drops (C1: Lloyd alone stops in a local minimum). Everything is seeded: the same frames give the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from im2sp_models.errors import CheckpointError

#: One Lloyd run from initial centroids to new ones (frames, seed and settings bound in).
Lloyd = Callable[[np.ndarray], np.ndarray]


def sample_rows(rows: Sequence[int], max_frames: int, seed: int) -> list[np.ndarray]:
    """Which rows of each part to train on: at most ``max_frames`` in all, each part's quota proportional to its rows.

    Args:
        rows: Row count of each part (a features shard), in a fixed order.
        max_frames: The cap; below it every row of every part is taken.
        seed: Seeds the draw.

    Returns:
        Per part, its sorted, distinct row indices (empty when its quota rounds down to zero).
    """
    total = sum(rows)
    rng = np.random.default_rng(seed)
    picks = []
    for count in rows:
        quota = count if total <= max_frames else int(max_frames * count / total)
        picks.append(np.sort(rng.choice(count, size=quota, replace=False)) if quota else np.zeros(0, dtype=np.int64))
    return picks


def kmeans_plus_plus(frames: np.ndarray, clusters: int, seed: int, *, points_per_cluster: int = 32) -> np.ndarray:
    """Greedy k-means++ seeding (each step keeps the best of 2 + ln K candidates) on a subsample.

    The subsample holds ``points_per_cluster`` × K frames: each seeding step reads every subsample point, so
    its size sets the cost (32 per cluster: about 1.5 s for K = 200, 768-d, on 2 cores).

    Args:
        frames: ``(n, D)`` points.
        clusters: K, the number of centres to pick.
        seed: Seeds the subsample and every draw.
        points_per_cluster: Subsample size per centre.

    Returns:
        ``(K, D)`` float32 initial centroids, each one of the frames.
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


def lloyd(frames: np.ndarray, init: np.ndarray, *, iterations: int, seed: int, gpu: bool = False) -> np.ndarray:
    """Run faiss Lloyd iterations from ``init`` on every frame (no subsampling); return float32 centroids.

    faiss normally subsamples to 256 points per centroid; ``max_points_per_centroid`` is raised so the whole
    (already capped) sample trains.
    """
    import faiss

    clusters = len(init)
    kmeans = faiss.Kmeans(
        frames.shape[1],
        clusters,
        niter=iterations,
        seed=seed,
        gpu=gpu,
        verbose=False,
        max_points_per_centroid=len(frames) // clusters + 1,
    )
    kmeans.train(frames, init_centroids=init)
    return np.asarray(kmeans.centroids, dtype=np.float32)


def nearest_two(frames: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances (float64) and ids (int64) of each frame's nearest and second-nearest centroid."""
    index = build_index(centroids)
    distances, ids = index.search(frames, min(2, len(centroids)))
    return np.asarray(distances, dtype=np.float64), np.asarray(ids, dtype=np.int64)


def inertia(frames: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared distances from each frame to its nearest centroid."""
    return float(nearest_two(frames, centroids)[0][:, 0].sum())


def swap_refine(
    frames: np.ndarray,
    centroids: np.ndarray,
    rerun: Lloyd,
    *,
    rounds: int,
    seed: int,
) -> tuple[np.ndarray, float]:
    """Improve a Lloyd solution by swap rounds; return the centroids and their inertia over ``frames``.

    Each round removes the K/20 centroids whose loss costs least (their frames' increase in distance if
    reassigned to the second-nearest centroid), re-seeds them at random frames of the K/20 clusters with the
    largest squared error, runs ``rerun(centroids)`` (Lloyd from them) and keeps the result only if the inertia
    drops; the first round that does not improve ends the search.
    """
    rng = np.random.default_rng(seed)
    clusters = len(centroids)
    distances, ids = nearest_two(frames, centroids)
    best = float(distances[:, 0].sum())
    moves = max(1, clusters // 20)
    for _ in range(rounds if clusters > 2 * moves else 0):
        loss = np.bincount(ids[:, 0], weights=distances[:, 1] - distances[:, 0], minlength=clusters)
        error = np.bincount(ids[:, 0], weights=distances[:, 0], minlength=clusters)
        removed = np.argsort(loss, kind="stable")[:moves]
        split = [int(k) for k in np.argsort(-error, kind="stable") if k not in set(removed.tolist())][:moves]
        trial = centroids.copy()
        for target, source in zip(removed, split, strict=True):
            trial[target] = frames[rng.choice(np.flatnonzero(ids[:, 0] == source))]
        trial = np.asarray(rerun(trial), dtype=np.float32)
        trial_distances, trial_ids = nearest_two(frames, trial)
        trial_inertia = float(trial_distances[:, 0].sum())
        if trial_inertia >= best:
            break
        centroids, distances, ids, best = trial, trial_distances, trial_ids, trial_inertia
    return centroids, best


def train_kmeans(
    frames: np.ndarray, clusters: int, *, seed: int, niter: int, swap_rounds: int, device: str = "cpu"
) -> tuple[np.ndarray, float]:
    """K-means++ seeding, ``niter`` Lloyd iterations, then swap rounds of ``niter // 2`` iterations each.

    Args:
        frames: ``(n, D)`` float32 frames, ``n >= clusters``.
        clusters: K.
        seed: Seeds the seeding, faiss and the swaps.
        niter: Lloyd iterations of the first run.
        swap_rounds: At most this many swap rounds.
        device: ``cuda`` trains on the GPU when faiss has GPU support (the ``[gpu]`` extra), else on the CPU.

    Returns:
        The ``(K, D)`` float32 centroids and their inertia over ``frames``.
    """
    import faiss

    # faiss-cpu (the default install) has no GPU code: device cuda trains on the CPU there.
    on_gpu = device == "cuda" and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    centroids = lloyd(frames, kmeans_plus_plus(frames, clusters, seed), iterations=niter, seed=seed, gpu=on_gpu)
    refine = partial(lloyd, frames, iterations=max(1, niter // 2), seed=seed, gpu=on_gpu)
    return swap_refine(frames, centroids, refine, rounds=swap_rounds, seed=seed)


def build_index(centroids: np.ndarray) -> Any:
    """A faiss exact L2 index over ``centroids`` (as float32)."""
    import faiss

    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def assign(index: Any, features: np.ndarray) -> np.ndarray:
    """Nearest centroid (int64) of every frame, by an index from :func:`build_index`."""
    if len(features) == 0:
        return np.zeros(0, dtype=np.int64)
    _, ids = index.search(np.ascontiguousarray(features, dtype=np.float32), 1)
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def load_sklearn_centroids(path: Path, *, trust_pickle: bool) -> np.ndarray:
    """The ``cluster_centers_`` of a GSLM/fairseq ``km.bin`` (a pickled scikit-learn k-means, joblib format).

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
    return centres
