"""C1 + C2: learn-speech-codebook and unit assignment against the scikit-learn path the peers use.

C1: the same 200,000 × 768 float32 frames, K = 200, 2 threads. Baseline: MiniBatchKMeans with fairseq's
learn_kmeans.py settings. Ours: the learn-speech-codebook function reading the frames from a features store.
Inertia of both over all frames. C2: nearest-centroid assignment of all frames — faiss exact L2 vs sklearn
``predict`` with float64 centres. Two kinds of frames (``--distribution``):

- ``gaussian``: a mixture of 200 equal, isotropic Gaussians in 768-d.
- ``realistic``: shaped like HuBERT features: 500 sources with Zipf weights (∝ 1/rank) in a 64-d latent
  space, Student-t spread (3 degrees of freedom), a log-normal scale per frame, mixed into 768-d
  by a random matrix, plus small isotropic noise. Fewer, overlapping, heavy-tailed clusters than K.

Times are wall-clock seconds and CPU seconds (all threads): other people's jobs on a shared machine stretch
the first, hardly the second. The baseline takes minutes, so its centroids and times are kept under
``--baseline-cache`` (keyed by distribution, frame count and generator version, and only reused on the
machine that measured them); the output says when a kept one is used and when it was measured.
``--fresh-baseline`` refits.
Run: ``.venv/bin/python -m benchmarks.bench_speech_kmeans [--frames 200000] [--distribution all]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

#: Bumped whenever a generator changes, so kept baselines of other frames are not reused.
GENERATOR_VERSION = 1
#: The realistic mixture's shape (also drawn on the GPU by ``benchmarks.gpu_kmeans_check``).
LATENT, SOURCES, T_DF, LATENT_SPREAD, LOG_SCALE_SIGMA, NOISE = 64, 500, 3.0, 0.6, 0.3, 0.3


def gaussian_frames(count: int, dim: int = 768, centres: int = 200) -> np.ndarray:
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, (centres, dim)).astype(np.float32)
    return (means[rng.integers(0, centres, count)] + rng.normal(0, 0.8, (count, dim))).astype(np.float32)


def realistic_parameters(dim: int = 768, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source weights (Zipf), latent source means and the latent-to-frame mixing matrix."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, SOURCES + 1)
    means = rng.normal(0, 1, (SOURCES, LATENT)).astype(np.float32)
    mixing = (rng.normal(0, 1, (LATENT, dim)) / np.sqrt(LATENT)).astype(np.float32)
    return weights / weights.sum(), means, mixing


def realistic_frames(count: int, dim: int = 768, seed: int = 0) -> np.ndarray:
    weights, means, mixing = realistic_parameters(dim, seed)
    rng = np.random.default_rng(seed + 1)
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 1 << 15):  # blocks keep the float64 draws small
        n = min(1 << 15, count - start)
        latent = means[rng.choice(SOURCES, n, p=weights)]
        latent += LATENT_SPREAD * rng.standard_t(T_DF, (n, LATENT)).astype(np.float32)
        latent *= rng.lognormal(0.0, LOG_SCALE_SIGMA, (n, 1)).astype(np.float32)
        out[start : start + n] = latent @ mixing + NOISE * rng.standard_normal((n, dim), dtype=np.float32)
    return out


DISTRIBUTIONS = {"gaussian": gaussian_frames, "realistic": realistic_frames}
T = TypeVar("T")


def timed(run: Callable[[], T]) -> tuple[T, float, float]:
    """``run()``'s result, wall seconds and CPU seconds of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def inertia(data: np.ndarray, centroids: np.ndarray) -> float:
    import faiss

    index = faiss.IndexFlatL2(data.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    distances, _ = index.search(data, 1)
    return float(distances.sum())


def sklearn_fit(data: np.ndarray) -> np.ndarray:
    """Fit with fairseq's learn_kmeans.py settings; return the fitted centres."""
    from sklearn.cluster import MiniBatchKMeans

    sk = MiniBatchKMeans(
        n_clusters=200,
        init="k-means++",
        max_iter=100,
        batch_size=10_000,
        tol=0.0,
        max_no_improvement=100,
        n_init=20,
        reassignment_ratio=0.0,
        random_state=0,
    ).fit(data)
    return np.asarray(sk.cluster_centers_)


def sklearn_baseline(data: np.ndarray, name: str, cache: Path, fresh: bool) -> tuple[np.ndarray, float, float, str]:
    """Centres, wall and CPU seconds, and where they came from: a kept fit of this machine, or a new one (kept)."""
    import sklearn

    key = f"{name}-{len(data)}-g{GENERATOR_VERSION}-sklearn{sklearn.__version__}"
    path = cache / f"{key}.npz"
    if path.exists() and not fresh:
        with np.load(path) as kept:
            facts = json.loads(str(kept["facts"]))
            if facts["host"] == platform.node() and "cpu_seconds" in facts:
                note = f"kept baseline from {facts['measured']} ({path}; --fresh-baseline refits)"
                return np.asarray(kept["centroids"]), facts["seconds"], facts["cpu_seconds"], note
    centres, seconds, cpu = timed(lambda: sklearn_fit(data))
    facts = {"host": platform.node(), "measured": datetime.datetime.now().isoformat(timespec="seconds")}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, centroids=centres, facts=json.dumps({**facts, "seconds": seconds, "cpu_seconds": cpu}))
    return centres, seconds, cpu, f"fitted now, kept in {path}"


def learn(data: np.ndarray) -> tuple[np.ndarray, float, float]:
    """learn-speech-codebook over a features store holding ``data``; its centroids, wall and CPU seconds."""
    from storage.store import Store
    from storage.versions import StoreVersion
    from storage.zarr_writers import ZarrRaggedWriter
    from tasks.speech_codebook import SpeechCodebookSettings, learn_speech_codebook

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        version = StoreVersion(store, "bench", "speech-features", "v")
        version.ensure_created({"fingerprint": "bench"})
        per = 1000
        with ZarrRaggedWriter(version, "train-00000", input_fingerprint="b", row_shape=(768,), dtype="float32") as w:
            for i in range(0, len(data), per):
                w.write(f"u{i}", {"values": data[i : i + per]})
        version.publish(["train-00000"])
        settings = SpeechCodebookSettings(clusters=200, max_frames=len(data))
        ours, seconds, cpu = timed(lambda: learn_speech_codebook(store, ["bench"], settings))
        centroids = np.load(f"{tmp}/_shared/speech-codebook/{ours.codebook_id}/shards/all/centroids.npy")
        return centroids, seconds, cpu


def assignment(data: np.ndarray, centroids: np.ndarray) -> None:
    """C2: sklearn ``predict`` (float64) vs faiss on the same centroids."""
    import faiss
    from sklearn.cluster import MiniBatchKMeans

    from im2sp_models.kmeans import assign

    # predict needs a fitted estimator: a one-step fit on a slice, then our centres replace its own
    sk = MiniBatchKMeans(n_clusters=len(centroids), n_init=1, max_iter=1, random_state=0).fit(data[:4096])
    sk.cluster_centers_ = centroids.astype(np.float64)
    index = faiss.IndexFlatL2(data.shape[1])
    index.add(centroids)
    start = time.perf_counter()
    expected = sk.predict(data.astype(np.float64))
    sk_assign = time.perf_counter() - start
    start = time.perf_counter()
    labels = assign(index, data)
    ours_assign = time.perf_counter() - start
    print(
        f"C2 assignment: sklearn predict (float64) {sk_assign:.2f} s, faiss {ours_assign:.2f} s, "
        f"x{sk_assign / ours_assign:.1f} (target ≥ 10); labels differ on {(labels != expected).sum()} frames"
    )


def run(name: str, frames: int, cache: Path, fresh: bool) -> dict[str, Any]:
    data = DISTRIBUTIONS[name](frames)
    sk_centres, sk_seconds, sk_cpu, note = sklearn_baseline(data, name, cache, fresh)
    centroids, ours_seconds, ours_cpu = learn(data)
    sk_inertia, our_inertia = inertia(data, sk_centres), inertia(data, centroids)
    print(f"C1 frames {frames} x 768, K=200, 2 threads ({name})")
    print(
        f"  sklearn MiniBatchKMeans (fairseq settings): {sk_seconds:.1f} s (CPU {sk_cpu:.1f} s), "
        f"inertia {sk_inertia:.4g} [{note}]"
    )
    print(f"  learn-speech-codebook (faiss): {ours_seconds:.1f} s (CPU {ours_cpu:.1f} s), inertia {our_inertia:.4g}")
    print(
        f"  speed-up x{sk_seconds / ours_seconds:.1f} (CPU time x{sk_cpu / ours_cpu:.1f}; target ≥ 25), "
        f"inertia ratio {our_inertia / sk_inertia:.4f} (target ≤ 1)"
    )
    assignment(data, centroids)
    return {
        "distribution": name,
        "seconds": [sk_seconds, ours_seconds],
        "cpu_seconds": [sk_cpu, ours_cpu],
        "speedup": sk_seconds / ours_seconds,
        "cpu_speedup": sk_cpu / ours_cpu,
        "inertia_ratio": our_inertia / sk_inertia,
        "baseline": note,
    }


def main() -> None:
    import faiss

    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--distribution", choices=[*DISTRIBUTIONS, "all"], default="all")
    parser.add_argument("--baseline-cache", type=Path, default=Path(tempfile.gettempdir()) / "im2sp-bench-sklearn")
    parser.add_argument("--fresh-baseline", action="store_true", help="refit scikit-learn even if one is kept")
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    names = list(DISTRIBUTIONS) if args.distribution == "all" else [args.distribution]
    results = [run(name, args.frames, args.baseline_cache, args.fresh_baseline) for name in names]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
