"""C1 + C2: learn-speech-codebook and unit assignment against the scikit-learn path the peers use.

C1: the same 200,000 × 768 float32 frames, K = 200, 2 threads. Baseline: MiniBatchKMeans with fairseq's
learn_kmeans.py settings. Ours: the learn-speech-codebook function reading the frames from a features store
(faiss on every sampled frame). Inertia of both over all frames. C2: nearest-centroid assignment of all
frames — faiss exact L2 vs sklearn ``predict`` with float64 centres. Frames are a Gaussian mixture (200 true
centres in 768-d), the shape of HuBERT features without needing weights.
Run: ``.venv/bin/python -m benchmarks.bench_speech_kmeans [--frames 200000]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import faiss
import numpy as np

from im2sp_models.kmeans import assign
from storage.store import Store
from storage.versions import StoreVersion
from storage.zarr_writers import ZarrRaggedWriter
from tasks.speech_codebook import SpeechCodebookSettings, learn_speech_codebook


def frames(count: int, dim: int = 768, centres: int = 200) -> np.ndarray:
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, (centres, dim)).astype(np.float32)
    return (means[rng.integers(0, centres, count)] + rng.normal(0, 0.8, (count, dim))).astype(np.float32)


def inertia(data: np.ndarray, centroids: np.ndarray) -> float:
    index = faiss.IndexFlatL2(data.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    distances, _ = index.search(data, 1)
    return float(distances.sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200_000)
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    data = frames(args.frames)
    from sklearn.cluster import MiniBatchKMeans

    start = time.perf_counter()
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
    sk_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        version = StoreVersion(store, "bench", "speech-features", "v")
        version.ensure_created({"fingerprint": "bench"})
        per = 1000
        with ZarrRaggedWriter(version, "train-00000", input_fingerprint="b", row_shape=(768,), dtype="float32") as w:
            for i in range(0, args.frames, per):
                w.write(f"u{i}", {"values": data[i : i + per]})
        version.publish(["train-00000"])
        start = time.perf_counter()
        ours = learn_speech_codebook(
            store, ["bench"], SpeechCodebookSettings(clusters=200, max_frames=args.frames, seed=0)
        )
        ours_seconds = time.perf_counter() - start
        centroids = np.load(f"{tmp}/_shared/speech-codebook/{ours.codebook_id}/shards/all/centroids.npy")
    sk_inertia, our_inertia = inertia(data, sk.cluster_centers_), inertia(data, centroids)
    print(f"C1 frames {args.frames} x 768, K=200, 2 threads")
    print(f"  sklearn MiniBatchKMeans (fairseq settings): {sk_seconds:.1f} s, inertia {sk_inertia:.4g}")
    print(f"  learn-speech-codebook (faiss, all frames): {ours_seconds:.1f} s, inertia {our_inertia:.4g}")
    print(
        f"  speed-up x{sk_seconds / ours_seconds:.1f} (target ≥ 25), inertia ratio "
        f"{our_inertia / sk_inertia:.4f} (target ≤ 1)"
    )
    index = faiss.IndexFlatL2(768)
    index.add(centroids)
    sk.cluster_centers_ = centroids.astype(np.float64)
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


if __name__ == "__main__":
    main()
