from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from im2sp_models.errors import CheckpointError
from im2sp_models.kmeans import (
    assign,
    build_index,
    inertia,
    kmeans_plus_plus,
    lloyd,
    load_sklearn_centroids,
    nearest_two,
    sample_rows,
    swap_refine,
    train_kmeans,
)


def _frames(count: int = 600, dim: int = 6, centres: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 4, (centres, dim))
    return (means[rng.integers(0, centres, count)] + rng.normal(0, 0.5, (count, dim))).astype(np.float32)


def _brute_force(frames: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    squared = ((frames[:, None, :].astype(np.float64) - centroids[None].astype(np.float64)) ** 2).sum(-1)
    return np.asarray(squared.argmin(axis=1), dtype=np.int64)


def test_kmeans_plus_plus_is_seeded_and_picks_distinct_frames() -> None:
    frames = _frames()
    seeds = kmeans_plus_plus(frames, 12, seed=1)
    np.testing.assert_array_equal(seeds, kmeans_plus_plus(frames, 12, seed=1))
    assert not np.array_equal(seeds, kmeans_plus_plus(frames, 12, seed=2))
    assert seeds.shape == (12, 6) and seeds.dtype == np.float32
    assert all((frames == centre).all(axis=1).any() for centre in seeds)  # every centre is one of the frames
    assert len({centre.tobytes() for centre in seeds}) == 12
    fewer = kmeans_plus_plus(frames[:3], 5, seed=0)  # fewer distinct points than clusters: points repeat
    assert fewer.shape == (5, 6)


def test_lloyd_never_raises_the_inertia() -> None:
    frames = _frames(count=800)
    centroids = kmeans_plus_plus(frames, 12, seed=3)
    previous = inertia(frames, centroids)
    for _ in range(4):
        centroids = lloyd(frames, centroids, iterations=1, seed=3)
        current = inertia(frames, centroids)
        assert current <= previous * (1 + 1e-6)
        previous = current


def test_swap_refine_never_raises_the_inertia_and_reports_it() -> None:
    frames = _frames(count=1000, centres=16)
    start = lloyd(frames, frames[:16].copy(), iterations=2, seed=0)  # a poor seeding leaves room to swap
    rerun = partial(lloyd, frames, iterations=2, seed=0)
    refined, reported = swap_refine(frames, start, rerun, rounds=5, seed=0)
    assert reported == pytest.approx(inertia(frames, refined), rel=1e-9)
    assert reported < inertia(frames, start)  # it moved centroids out of shared clusters
    unchanged, same = swap_refine(frames, start, rerun, rounds=0, seed=0)
    np.testing.assert_array_equal(unchanged, start)
    assert same == pytest.approx(inertia(frames, start), rel=1e-9)


def test_train_kmeans_is_deterministic() -> None:
    frames = _frames(count=800)
    first = train_kmeans(frames, 12, seed=4, niter=4, swap_rounds=2)
    again = train_kmeans(frames, 12, seed=4, niter=4, swap_rounds=2)
    assert first[0].tobytes() == again[0].tobytes() and first[1] == again[1]
    assert first[1] == pytest.approx(inertia(frames, first[0]), rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 9), st.integers(0, 2**16))
def test_assignment_matches_brute_force(count: int, clusters: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames = rng.normal(size=(count, 5)).astype(np.float32)
    centroids = rng.normal(size=(clusters, 5)).astype(np.float32)
    labels = assign(build_index(centroids), frames)
    assert labels.dtype == np.int64
    expected = _brute_force(frames, centroids)
    chosen = ((frames - centroids[labels]) ** 2).sum(-1)
    best = ((frames - centroids[expected]) ** 2).sum(-1)
    np.testing.assert_allclose(chosen, best, rtol=1e-5, atol=1e-5)  # ties may pick either centroid
    assert assign(build_index(centroids), np.zeros((0, 5), np.float32)).shape == (0,)


def test_nearest_two_are_the_two_closest() -> None:
    frames = _frames(count=50)
    centroids = _frames(count=7, seed=1)
    distances, ids = nearest_two(frames, centroids)
    squared = ((frames[:, None, :].astype(np.float64) - centroids[None]) ** 2).sum(-1)
    np.testing.assert_allclose(distances, np.sort(squared, axis=1)[:, :2], rtol=1e-4, atol=1e-4)
    assert (ids[:, 0] != ids[:, 1]).all()


@given(st.lists(st.integers(0, 60), min_size=1, max_size=6), st.integers(1, 200), st.integers(0, 99))
def test_sample_rows_respect_the_cap_and_the_quotas(rows: list[int], cap: int, seed: int) -> None:
    picks = sample_rows(rows, cap, seed)
    assert sum(len(p) for p in picks) <= cap
    for count, picked in zip(rows, picks, strict=True):
        assert len(np.unique(picked)) == len(picked) and (np.diff(picked) > 0).all()
        assert picked.size == 0 or (picked.min() >= 0 and picked.max() < count)
        assert len(picked) == (count if sum(rows) <= cap else int(cap * count / sum(rows)))
    assert all(np.array_equal(a, b) for a, b in zip(picks, sample_rows(rows, cap, seed), strict=True))


def test_sklearn_centroids_need_trust_and_centres(tmp_path: Path) -> None:
    import joblib

    joblib.dump({"not": "kmeans"}, tmp_path / "km.bin")
    with pytest.raises(CheckpointError, match="trust-pickle"):
        load_sklearn_centroids(tmp_path / "km.bin", trust_pickle=False)
    with pytest.raises(CheckpointError, match="no cluster_centers_"):
        load_sklearn_centroids(tmp_path / "km.bin", trust_pickle=True)
    (tmp_path / "junk.bin").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot be unpickled"):
        load_sklearn_centroids(tmp_path / "junk.bin", trust_pickle=True)
