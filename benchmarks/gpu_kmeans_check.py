"""GPU check of the speech codebook's k-means: K = 200 on 2,000,000 × 768 frames (issue 18's target: ≤ 10 s).

Needs torch and numpy (faiss optional), so it runs on a GPU host without the rest of the stack. Frames are
``bench_speech_kmeans``'s realistic mixture (same sources, weights and mixing matrix), drawn by torch on the
device, then held on the host as train_kmeans takes them.

1. ``train_kmeans`` end to end on the torch engine (seeding on the host, the device Lloyd on the subsample,
   then over every frame), after a warm-up on a slice; run twice, the centroid bytes compared. With faiss-gpu
   installed, the same on faiss's GPU engine.
2. Lloyd over every frame: seconds per iteration and the distance GEMM's rate (2·N·K·D FLOPs an iteration;
   the means' one-hot GEMM does as much again, not counted), as a fraction of the H200's dense bf16
   (≈ 989 TFLOP/s) and fp32 non-tensor (≈ 67 TFLOP/s) peaks.
3. Labels of the torch engine vs CPU faiss ``IndexFlatL2`` on the same centroids, over a 200,000-frame
   subset; where they differ, how far apart (float64) the two centroids' distances are.

The last line is one JSON object. Run: ``python -m benchmarks.gpu_kmeans_check [--frames 2000000]
[--device cuda]`` (``--device cpu --frames 20000`` runs the same code on the CPU, slowly).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from benchmarks.bench_speech_kmeans import (
    LATENT,
    LATENT_SPREAD,
    LOG_SCALE_SIGMA,
    NOISE,
    T_DF,
    realistic_parameters,
)
from im2sp_models.kmeans import FaissKMeans, faiss_has_gpu, train_kmeans
from im2sp_models.kmeans_torch import TorchKMeans

CLUSTERS, DIM = 200, 768
PEAK_BF16, PEAK_FP32 = 989e12, 67e12


def device_frames(count: int, device: str, seed: int = 0) -> np.ndarray:
    """The realistic mixture drawn by torch on ``device`` (fast on a GPU), returned as host float32."""
    weights, means, mixing = (torch.as_tensor(a, device=device) for a in realistic_parameters(DIM, seed))
    generator = torch.Generator(device=device).manual_seed(seed)
    out = np.empty((count, DIM), dtype=np.float32)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=device)

    for start in range(0, count, 1 << 18):
        n = min(1 << 18, count - start)
        sources = torch.multinomial(weights.float(), n, replacement=True, generator=generator)
        chi2 = (normal(n, LATENT, int(T_DF)) ** 2).sum(dim=-1)  # integer degrees of freedom: a sum of squares
        latent = means[sources] + LATENT_SPREAD * normal(n, LATENT) / torch.sqrt(chi2 / T_DF)
        latent *= torch.exp(LOG_SCALE_SIGMA * normal(n, 1))
        out[start : start + n] = (latent @ mixing + NOISE * normal(n, DIM)).cpu().numpy()
    return out


def _train(frames: np.ndarray, engine: Any) -> tuple[np.ndarray, float, float]:
    start = time.perf_counter()  # SpeechCodebookSettings' defaults (not imported: it would need prefect)
    centroids, fit = train_kmeans(frames, CLUSTERS, seed=0, niter=8, swap_rounds=3, engine=engine)
    return centroids, fit, time.perf_counter() - start


def end_to_end(frames: np.ndarray, device: str) -> dict[str, Any]:
    """Step 1: seconds of train_kmeans (torch engine; faiss-gpu too if present), and whether reruns agree."""
    _train(frames[: min(len(frames), 20 * 1024)], TorchKMeans(device))  # CUDA context, cuBLAS handles
    centroids, fit, seconds = _train(frames, TorchKMeans(device))
    again, _, seconds_again = _train(frames, TorchKMeans(device))
    result: dict[str, Any] = {
        "torch_seconds": [round(seconds, 3), round(seconds_again, 3)],
        "torch_inertia": fit,
        "torch_deterministic": centroids.tobytes() == again.tobytes(),
        "centroids": centroids,
    }
    print(f"train_kmeans, torch engine on {device}: {seconds:.2f} s, again {seconds_again:.2f} s (target ≤ 10)")
    print(f"  inertia {fit:.6g}; same centroid bytes on the rerun: {result['torch_deterministic']}")
    if device.startswith("cuda") and faiss_has_gpu():
        _, faiss_fit, faiss_seconds = _train(frames, FaissKMeans(gpu=True))
        result.update(faiss_gpu_seconds=round(faiss_seconds, 3), faiss_gpu_inertia=faiss_fit)
        print(f"train_kmeans, faiss-gpu engine: {faiss_seconds:.2f} s, inertia {faiss_fit:.6g}")
    return result


def lloyd_rate(frames: np.ndarray, centroids: np.ndarray, device: str, iterations: int) -> dict[str, Any]:
    """Step 2: one Lloyd iteration over every frame, its seconds and its distance GEMM's rate."""
    engine = TorchKMeans(device)
    engine.lloyd(frames, centroids, iterations=1, seed=0)  # the frames go to the device here, untimed
    start = time.perf_counter()
    engine.lloyd(frames, centroids, iterations=iterations, seed=0)
    per_iteration = (time.perf_counter() - start) / iterations
    rate = 2 * len(frames) * CLUSTERS * DIM / per_iteration
    print(
        f"Lloyd over all {len(frames)} frames: {per_iteration * 1e3:.1f} ms an iteration; distance GEMM "
        f"{rate / 1e12:.2f} TFLOP/s = {rate / PEAK_BF16:.2%} of bf16 dense peak, {rate / PEAK_FP32:.2%} of fp32"
    )
    return {
        "lloyd_iteration_s": per_iteration,
        "distance_tflops": rate / 1e12,
        "fraction_of_bf16_peak": rate / PEAK_BF16,
        "fraction_of_fp32_peak": rate / PEAK_FP32,
    }


def labels_vs_faiss(frames: np.ndarray, centroids: np.ndarray, device: str) -> dict[str, Any]:
    """Step 3: torch labels vs CPU faiss on the same centroids; the float64 gap where they differ."""
    try:
        from im2sp_models.kmeans import assign, build_index

        expected = assign(build_index(centroids), frames)
    except ImportError:
        print("labels vs CPU faiss: faiss is not installed, skipped")
        return {"label_frames": 0, "labels_differ": None}
    labels = TorchKMeans(device).assign(frames, centroids)
    differ = np.flatnonzero(labels != expected)
    gaps = [0.0]
    if len(differ):  # only near ties should differ: the two picks' exact distances all but equal
        rows = frames[differ].astype(np.float64)
        ours = ((rows - centroids[labels[differ]].astype(np.float64)) ** 2).sum(axis=1)
        theirs = ((rows - centroids[expected[differ]].astype(np.float64)) ** 2).sum(axis=1)
        gaps = list(np.abs(ours - theirs) / np.maximum(theirs, 1e-30))
    print(
        f"labels vs CPU faiss on {len(frames)} frames: {len(differ)} differ "
        f"(largest relative gap between the two picks' float64 distances: {max(gaps):.2e})"
    )
    return {"label_frames": len(frames), "labels_differ": len(differ), "max_tie_gap": max(gaps)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=2_000_000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iterations", type=int, default=10, help="Lloyd iterations timed in step 2")
    args = parser.parse_args()
    start = time.perf_counter()
    frames = device_frames(args.frames, args.device)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"{args.frames} x {DIM} frames on {name}, K = {CLUSTERS}: drawn in {time.perf_counter() - start:.1f} s")
    result = {"device": name, "frames": args.frames, "clusters": CLUSTERS, **end_to_end(frames, args.device)}
    centroids = result.pop("centroids")
    result.update(lloyd_rate(frames, centroids, args.device, args.iterations))
    result.update(labels_vs_faiss(frames[:200_000], centroids, args.device))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
