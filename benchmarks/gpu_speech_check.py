"""GPU check of the speech side: HuBERT-Base layer-6 extraction rates in bf16, and exact unit assignment.

Needs only torch, transformers and numpy (plus scikit-learn for the assignment baseline), so it runs on a GPU
host without the rest of the stack. Random HuBERT-Base weights cost the same as trained ones.

1. Extraction, the same utterances (2–6 s, SpokenCOCO's range) in memory: a per-utterance loop over the
   truncated model under bf16 autocast vs our extractor (conv stack per utterance, masked transformer
   batches) at several batch sizes; audio-seconds per second, and how far bf16 features are from fp32 ones.
2. Assignment of 200,000 × 768 frames to 200 centroids: exact float32 distances on the GPU (TF32 off) vs
   scikit-learn ``predict`` with float64 centres on the host's cores; labels compared.

Run: ``python -m benchmarks.gpu_speech_check [--utterances 256] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from im2sp_models.speech_features import load_extractor


def sync(device: str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(run: Callable[[], object], device: str, warm_up: Callable[[], object] | None = None) -> float:
    """Seconds of ``run`` after ``warm_up`` (by default ``run`` itself: kernels, allocator, caches), synchronised."""
    (warm_up or run)()
    sync(device)
    start = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - start


def extraction(device: str, utterances: int) -> None:
    """Print audio-s/s of the per-utterance loop and of batched extraction, and the bf16 vs fp32 gap."""
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    waves = [rng.normal(0, 0.1, int(rng.uniform(2.0, 6.0) * 16_000)).astype(np.float32) for _ in range(utterances)]
    seconds = sum(len(w) for w in waves) / 16_000
    with tempfile.TemporaryDirectory() as tmp:
        HubertModel(HubertConfig()).save_pretrained(Path(tmp))
        base: Any = load_extractor("hubert", Path(tmp), device=device, layer=6, batch_size=1, precision="bf16")
        model = base.model
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))

        def loop() -> None:
            with torch.inference_mode(), autocast:
                for wave in waves:
                    model(torch.from_numpy(wave[None]).to(device)).last_hidden_state.float().cpu()

        print(f"extraction: HuBERT-Base layer 6, {utterances} utterances, {seconds:.0f} s of audio, {device}")
        loop_s = timed(loop, device)
        print(f"  per-utterance loop (bf16)   {seconds / loop_s:8.0f} audio-s/s")
        for batch, padded_convs in ((32, False), (8, True), (32, True), (64, True)):
            base.batch_size, base.max_batch_frames, base.pad_conv_stack = batch, batch * 300, padded_convs
            elapsed = timed(lambda: base.extract(waves), device)
            what = "all padded" if padded_convs else "convs alone"
            print(f"  batch {batch:3d}, {what:11s}      {seconds / elapsed:8.0f} audio-s/s  ×{loop_s / elapsed:.2f}")
        base.batch_size, base.max_batch_frames, base.pad_conv_stack = 32, 32 * 300, True
        bf16 = base.extract(waves[:16])
        alone = [base.extract([w])[0] for w in waves[:16]]
        gaps = [float(np.linalg.norm(a - b) / np.linalg.norm(b)) for a, b in zip(bf16, alone, strict=True)]
        print(f"  batched vs alone (bf16): relative L2 gap mean {np.mean(gaps):.2e}, max {np.max(gaps):.2e}")
        with torch.inference_mode():
            fp32 = [model(torch.from_numpy(w[None]).to(device)).last_hidden_state[0].cpu().numpy() for w in waves[:16]]
        gaps = [float(np.linalg.norm(a - b) / np.linalg.norm(b)) for a, b in zip(bf16, fp32, strict=True)]
        print(f"  bf16 vs fp32 features: relative L2 gap mean {np.mean(gaps):.4f}, max {np.max(gaps):.4f}")


def assignment(device: str, frames: int) -> None:
    """Print exact GPU assignment time vs scikit-learn predict (float64 centres) and label agreement."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, (200, 768)).astype(np.float32)
    data = (means[rng.integers(0, 200, frames)] + rng.normal(0, 0.8, (frames, 768))).astype(np.float32)
    centroids = means + rng.normal(0, 0.05, means.shape).astype(np.float32)
    km = KMeans(n_clusters=200, n_init=1, max_iter=1).fit(data[:2000])
    km.cluster_centers_ = centroids.astype(np.float64)
    start = time.perf_counter()
    expected = km.predict(data.astype(np.float64))
    sk_s = time.perf_counter() - start
    torch.backends.cuda.matmul.allow_tf32 = False

    def gpu_assign() -> np.ndarray:
        c = torch.from_numpy(centroids).to(device)
        norms = (c * c).sum(1)
        labels = []
        for start in range(0, frames, 65_536):
            x = torch.from_numpy(data[start : start + 65_536]).to(device)
            labels.append(torch.argmin(norms[None, :] - 2.0 * x @ c.T, dim=1).cpu())
        return torch.cat(labels).numpy()

    gpu_s = timed(gpu_assign, device)
    labels = gpu_assign()
    print(f"assignment: {frames} × 768 frames, K = 200")
    print(f"  scikit-learn predict (float64, host cores) {sk_s:.2f} s; exact float32 on {device} {gpu_s:.3f} s")
    print(f"  ×{sk_s / gpu_s:.0f}; labels differ on {(labels != expected).sum()} frames")


def main() -> None:
    """Run both checks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=256)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    extraction(args.device, args.utterances)
    assignment(args.device, args.frames)


if __name__ == "__main__":
    main()
