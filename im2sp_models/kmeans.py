"""K-means for the speech-unit codebook: k-means++ seeding, Lloyd, swap refinement, nearest-centroid assignment.

Arrays in, arrays out: sampling frames from the store and committing centroids belong to the tasks. faiss seeds
with random points, which on clustered data leaves some centroids sharing a cluster while others straddle two;
Lloyd iterations do not undo that, so seeding is greedy k-means++. After Lloyd, swap rounds move the centroids
that cost least to lose into the clusters of largest squared error, and keep the result only if the inertia
drops (C1: Lloyd alone stops in a local minimum). Lloyd and the swaps run on a subsample of
``points_per_centroid`` × K frames (faiss's own default is 256): which local minimum the centroids end in is
settled there at a quarter of the cost for 200,000 frames, so the swap rounds that decide it are cheap; one or
two Lloyd passes over every frame then fit them to all frames. Everything is seeded: the same frames give the
same bytes.

Lloyd runs on faiss (CPU, or GPU with faiss-gpu), or on torch when a GPU is asked for and faiss has none
(:mod:`im2sp_models.kmeans_torch`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from im2sp_models.errors import CheckpointError

#: One Lloyd run from initial centroids to new ones (frames, seed and settings bound in).
Lloyd = Callable[[np.ndarray], np.ndarray]
#: Squared distances (float64) and ids (int64) of each frame's two nearest centroids.
NearestTwo = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class KMeansEngine(Protocol):
    """Where Lloyd iterations and nearest-centroid searches run (faiss or torch)."""

    def lloyd(self, frames: np.ndarray, init: np.ndarray, *, iterations: int, seed: int) -> np.ndarray:
        """Lloyd iterations from ``init`` over every frame given; float32 centroids."""

    def nearest_two(self, frames: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances (float64) and ids (int64) of each frame's two nearest centroids."""

    def inertia(self, frames: np.ndarray, centroids: np.ndarray) -> float:
        """Sum of squared distances from each frame to its nearest centroid."""


@dataclass(frozen=True)
class FaissKMeans:
    """Lloyd by faiss (on a GPU when ``gpu``); searches by an exact faiss index on the CPU."""

    gpu: bool = False

    def lloyd(self, frames: np.ndarray, init: np.ndarray, *, iterations: int, seed: int) -> np.ndarray:
        """See :func:`lloyd`."""
        return lloyd(frames, init, iterations=iterations, seed=seed, gpu=self.gpu)

    def nearest_two(self, frames: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :func:`nearest_two`."""
        return nearest_two(frames, centroids)

    def inertia(self, frames: np.ndarray, centroids: np.ndarray) -> float:
        """See :func:`inertia`."""
        return inertia(frames, centroids)


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


#: Up to this many seeding points, k-means++ computes their Gram matrix once (64 MiB at most): one large GEMM
#: beats K skinny ones (each reads every point for 2 + ln K columns) by 3-4× on 2 cores.
GRAM_MAX_POINTS = 4096


def kmeans_plus_plus(frames: np.ndarray, clusters: int, seed: int, *, points_per_cluster: int = 16) -> np.ndarray:
    """Greedy k-means++ seeding (each step keeps the best of 2 + ln K candidates) on a subsample.

    The subsample holds ``points_per_cluster`` × K frames: each seeding step reads every subsample point, so
    its size sets the cost. 16 per cluster keeps K = 200 under :data:`GRAM_MAX_POINTS`; on C1's frames the
    inertia after training stayed within 0.2% of 32's (seed to seed it moves by 0.5%).

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
    gram = points @ points.T if len(points) <= GRAM_MAX_POINTS else None

    def inner(rows: np.ndarray) -> np.ndarray:
        """``(len(rows), n)`` dot products of the points ``rows`` with every point."""
        return np.asarray(gram[rows] if gram is not None else points[rows] @ points.T)

    norms = np.einsum("ij,ij->i", points, points)
    trials = 2 + int(np.log(clusters))
    centres = np.empty((clusters, points.shape[1]), dtype=np.float32)
    first = int(rng.integers(len(points)))
    centres[0] = points[first]
    closest = np.maximum(norms - 2.0 * inner(np.array([first]))[0] + norms[first], 0.0)
    for index in range(1, clusters):
        total = float(closest.sum())
        if total <= 0.0:  # fewer distinct points than clusters: repeat points, k-means copes
            candidates = rng.integers(len(points), size=trials)
        else:
            candidates = np.searchsorted(np.cumsum(closest), rng.random(trials) * total).clip(0, len(points) - 1)
        distances = norms[:, None] - 2.0 * inner(candidates).T + norms[candidates][None, :]
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
    """Sum of squared distances from each frame to its nearest centroid (one neighbour: faiss's faster search)."""
    distances, _ = build_index(centroids).search(frames, 1)
    return float(np.asarray(distances, dtype=np.float64).sum())


def swap_refine(
    frames: np.ndarray,
    centroids: np.ndarray,
    rerun: Lloyd,
    *,
    rounds: int,
    seed: int,
    nearest: NearestTwo = nearest_two,
) -> tuple[np.ndarray, float]:
    """Improve a Lloyd solution by swap rounds; return the centroids and their inertia over ``frames``.

    Each round removes the K/20 centroids whose loss costs least (their frames' increase in distance if
    reassigned to the second-nearest centroid), re-seeds them at random frames of the K/20 clusters with the
    largest squared error, runs ``rerun(centroids)`` (Lloyd from them) and keeps the result only if the inertia
    drops; the first round that does not improve ends the search. ``nearest`` is the search to measure with.
    """
    rng = np.random.default_rng(seed)
    clusters = len(centroids)
    distances, ids = nearest(frames, centroids)
    best = float(distances[:, 0].sum())
    moves = max(1, clusters // 20)
    for _ in range(rounds if clusters > 2 * moves else 0):
        loss = np.bincount(ids[:, 0], weights=distances[:, 1] - distances[:, 0], minlength=clusters)
        error = np.bincount(ids[:, 0], weights=distances[:, 0], minlength=clusters)
        removed = np.argsort(loss, kind="stable")[:moves]
        gone = set(removed.tolist())
        # Only clusters that hold frames can give one to a moved centroid (on a subsample some may hold none).
        split = [int(k) for k in np.argsort(-error, kind="stable") if k not in gone and error[k] > 0][:moves]
        removed = removed[: len(split)]
        if not split:
            break
        trial = centroids.copy()
        for target, source in zip(removed, split, strict=True):
            trial[target] = frames[rng.choice(np.flatnonzero(ids[:, 0] == source))]
        trial = np.asarray(rerun(trial), dtype=np.float32)
        trial_distances, trial_ids = nearest(frames, trial)
        trial_inertia = float(trial_distances[:, 0].sum())
        if trial_inertia >= best:
            break
        centroids, distances, ids, best = trial, trial_distances, trial_ids, trial_inertia
    return centroids, best


def faiss_has_gpu() -> bool:
    """Whether faiss is installed, was built with GPU code (the ``[gpu]`` extra) and sees a GPU."""
    try:
        import faiss
    except ImportError:  # a GPU host may carry torch alone: the torch engine needs no faiss
        return False
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def torch_has_cuda() -> bool:
    """Whether torch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


def select_engine(device: str) -> KMeansEngine:
    """Faiss on the GPU, else torch on the GPU, for a ``cuda`` device; faiss on the CPU otherwise or without one."""
    if device.startswith("cuda"):
        if faiss_has_gpu():
            return FaissKMeans(gpu=True)
        if torch_has_cuda():
            from im2sp_models.kmeans_torch import TorchKMeans

            return TorchKMeans(device)
    return FaissKMeans()


def subsample(frames: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most ``size`` distinct frames in their original order, seeded (all of them when there are fewer)."""
    if len(frames) <= size:
        return frames
    rng = np.random.default_rng([seed, 1])  # a stream apart from the seeding's, which draws from the same seed
    return np.ascontiguousarray(frames[np.sort(rng.choice(len(frames), size, replace=False))])


def train_kmeans(
    frames: np.ndarray,
    clusters: int,
    *,
    seed: int,
    niter: int,
    swap_rounds: int,
    device: str = "cpu",
    points_per_centroid: int = 256,
    full_iterations: int = 1,
    engine: KMeansEngine | None = None,
) -> tuple[np.ndarray, float]:
    """K-means++ seeding, ``niter`` Lloyd iterations and swap rounds on a subsample, then Lloyd on every frame.

    Args:
        frames: ``(n, D)`` float32 frames, ``n >= clusters``.
        clusters: K.
        seed: Seeds the seeding, the subsample, faiss and the swaps.
        niter: Lloyd iterations of the first run.
        swap_rounds: At most this many swap rounds, each rerunning ``niter // 2`` Lloyd iterations.
        device: ``cuda`` trains on the GPU: by faiss when it has GPU support (the ``[gpu]`` extra), else by
            torch when it sees a GPU, else on the CPU (:func:`select_engine`).
        points_per_centroid: The subsample holds this many frames per centroid (every frame when there are
            fewer than that many).
        full_iterations: Lloyd iterations over every frame after the subsample's (none when the subsample
            is every frame).
        engine: Runs Lloyd and the searches; ``None`` picks one for ``device``.

    Returns:
        The ``(K, D)`` float32 centroids and their inertia over ``frames``.
    """
    engine = select_engine(device) if engine is None else engine
    sample = subsample(frames, points_per_centroid * clusters, seed)
    centroids = engine.lloyd(sample, kmeans_plus_plus(frames, clusters, seed), iterations=niter, seed=seed)
    refine = partial(engine.lloyd, sample, iterations=max(1, niter // 2), seed=seed)
    centroids, fit = swap_refine(sample, centroids, refine, rounds=swap_rounds, seed=seed, nearest=engine.nearest_two)
    if sample is frames:
        return centroids, fit
    if full_iterations > 0:
        centroids = engine.lloyd(frames, centroids, iterations=full_iterations, seed=seed)
    return centroids, engine.inertia(frames, centroids)


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
