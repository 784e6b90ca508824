from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from im2sp_models import kmeans
from im2sp_models.errors import CheckpointError
from im2sp_models.kmeans import (
    FaissKMeans,
    assign,
    build_index,
    inertia,
    kmeans_plus_plus,
    lloyd,
    load_sklearn_centroids,
    nearest_two,
    sample_rows,
    select_engine,
    swap_refine,
    train_kmeans,
)
from im2sp_models.kmeans_torch import TorchKMeans


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


def test_train_kmeans_on_a_subsample_reports_the_inertia_over_every_frame() -> None:
    frames = _frames(count=3000, dim=8, centres=10)
    sampled = train_kmeans(frames, 10, seed=5, niter=4, swap_rounds=2, points_per_centroid=40, full_iterations=1)
    again = train_kmeans(frames, 10, seed=5, niter=4, swap_rounds=2, points_per_centroid=40, full_iterations=1)
    assert sampled[0].tobytes() == again[0].tobytes()
    assert sampled[1] == pytest.approx(inertia(frames, sampled[0]), rel=1e-6)  # over all 3000, not the 400
    whole = train_kmeans(frames, 10, seed=5, niter=4, swap_rounds=2, points_per_centroid=1000)
    assert sampled[1] <= whole[1] * 1.01  # the subsample costs (almost) nothing in fit


def test_kmeans_plus_plus_seeds_the_same_with_or_without_the_gram_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _frames(count=400)
    with_gram = kmeans_plus_plus(frames, 12, seed=6)
    monkeypatch.setattr(kmeans, "GRAM_MAX_POINTS", 0)
    np.testing.assert_array_equal(kmeans_plus_plus(frames, 12, seed=6), with_gram)


def test_torch_assignment_is_faiss_assignment_on_the_same_centroids() -> None:
    frames = _frames(count=3000, dim=16, centres=20, seed=7)
    centroids = lloyd(frames, kmeans_plus_plus(frames, 20, seed=7), iterations=3, seed=7)
    engine = TorchKMeans("cpu", chunk_rows=512)  # several chunks, a ragged last one
    np.testing.assert_array_equal(engine.assign(frames, centroids), assign(build_index(centroids), frames))
    distances, ids = engine.nearest_two(frames, centroids)
    expected_distances, expected_ids = nearest_two(frames, centroids)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-4, atol=1e-3)
    assert engine.assign(frames[:0], centroids).shape == (0,)


def test_torch_lloyd_follows_faiss_lloyd_from_the_same_start() -> None:
    frames = _frames(count=3000, dim=16, centres=20, seed=8)
    init = kmeans_plus_plus(frames, 20, seed=8)
    ours = TorchKMeans("cpu", chunk_rows=1000).lloyd(frames, init, iterations=6, seed=8)
    theirs = lloyd(frames, init, iterations=6, seed=8)
    # Same labels each step; the means differ only in rounding: faiss adds each cluster's frames one by one in
    # float32, torch adds float32 block sums in float64.
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, TorchKMeans("cpu", chunk_rows=1000).lloyd(frames, init, iterations=6, seed=8))


def test_torch_lloyd_splits_the_largest_cluster_into_an_empty_one() -> None:
    frames = _frames(count=600, dim=6, centres=12, seed=9)
    init = kmeans_plus_plus(frames, 12, seed=9)
    init[3] = 1e4  # nothing is near: cluster 3 empties at the first step
    moved = TorchKMeans("cpu").lloyd(frames, init, iterations=1, seed=0)
    assert np.abs(moved[3]).max() < 100  # it took half of another cluster
    assert len({row.tobytes() for row in moved}) == 12
    labels = TorchKMeans("cpu").assign(frames, TorchKMeans("cpu").lloyd(frames, init, iterations=4, seed=0))
    assert np.bincount(labels, minlength=12).min() > 0


def test_cuda_falls_back_to_faiss_on_the_cpu_and_takes_torch_when_only_torch_has_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kmeans, "faiss_has_gpu", lambda: False)
    monkeypatch.setattr(kmeans, "torch_has_cuda", lambda: False)
    assert select_engine("cuda") == FaissKMeans(gpu=False)
    frames = _frames(count=800)
    on_cpu = train_kmeans(frames, 12, seed=4, niter=4, swap_rounds=1)
    assert train_kmeans(frames, 12, seed=4, niter=4, swap_rounds=1, device="cuda")[0].tobytes() == on_cpu[0].tobytes()
    monkeypatch.setattr(kmeans, "torch_has_cuda", lambda: True)
    chosen = select_engine("cuda:1")
    assert isinstance(chosen, TorchKMeans) and chosen.device == "cuda:1"
    assert select_engine("cpu") == FaissKMeans(gpu=False)
    monkeypatch.setattr(kmeans, "faiss_has_gpu", lambda: True)
    assert select_engine("cuda") == FaissKMeans(gpu=True)


def test_train_kmeans_on_the_torch_engine_matches_the_faiss_one() -> None:
    frames = _frames(count=3000, dim=8, centres=10, seed=10)
    train = partial(train_kmeans, frames, 10, seed=1, niter=4, swap_rounds=1, points_per_centroid=100)
    on_faiss = train()
    on_torch = train(engine=TorchKMeans("cpu"))  # what device cuda runs when faiss has no GPU code
    np.testing.assert_allclose(on_torch[0], on_faiss[0], rtol=1e-4, atol=1e-4)
    assert on_torch[1] == pytest.approx(inertia(frames, on_torch[0]), rel=1e-5)
