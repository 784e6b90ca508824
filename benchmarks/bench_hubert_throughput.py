"""C3: extract-speech-features throughput with the HuBERT-Base architecture (layer 6) on the CPU.

Random weights cost the same as trained ones. Three paths over the same utterances (16 kHz WAV files of 2–6
seconds, SpokenCOCO's range), in the same process, each after a warm-up:

- per-utterance loop: what the peers' dump scripts do — read one file, run the model truncated to layer 6
  on it, next file (no batching, no overlap of reading and compute);
- bare forward: our extractor (conv stack per utterance, transformer blocks in padded, masked batches) on
  waveforms already in memory;
- flow path: the per-shard function the flow's tasks run (read, sha256 check, decode, batch, extract, write
  float16 Zarr, commit).

Targets: flow ≥ 0.9 × bare forward, flow ≥ 1.3 × the per-utterance loop (audio-seconds per second).
Run: ``.venv/bin/python -m benchmarks.bench_hubert_throughput [--utterances 32] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from storage.store import Store
from tasks.jobs import ShardJob
from tasks.models import ExtractorRef, extractor_for
from tasks.speech_features import ExtractSettings, extract_shard


def _utterances(root: Path, count: int) -> tuple[ShardJob, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    items, waves = [], []
    for i in range(count):
        wave = rng.normal(0, 0.1, int(rng.uniform(2.0, 6.0) * 16_000)).astype(np.float32)
        buffer = io.BytesIO()
        soundfile.write(buffer, wave, 16_000, subtype="PCM_16", format="WAV")
        (root / f"u{i}.wav").write_bytes(buffer.getvalue())
        items.append((f"u{i}", f"u{i}.wav", hashlib.sha256(buffer.getvalue()).hexdigest()))
        waves.append(soundfile.read(io.BytesIO(buffer.getvalue()), dtype="float32")[0])
    return ShardJob("bench", "train-00000", "fp", tuple(items)), waves


def forward_macs(config: Any, samples: int, layers: int) -> dict[str, int]:
    """Multiply-accumulates of one unpadded forward through ``layers`` blocks, by part (weights only)."""
    length, channels, macs = samples, 1, {"conv stack": 0, "positional conv": 0, "blocks": 0}
    for width, kernel, stride in zip(config.conv_dim, config.conv_kernel, config.conv_stride, strict=True):
        length = (length - kernel) // stride + 1
        macs["conv stack"] += length * width * channels * kernel
        channels = width
    hidden = config.hidden_size
    macs["conv stack"] += length * channels * hidden  # feature projection
    macs["positional conv"] = length * hidden * (hidden // config.num_conv_pos_embedding_groups)
    macs["positional conv"] *= config.num_conv_pos_embeddings
    per_block = length * (4 * hidden * hidden + 2 * hidden * config.intermediate_size) + 2 * length * length * hidden
    macs["blocks"] = layers * per_block
    return macs


def _timed(run: Any) -> float:
    run()  # warm-up: allocator, kernels, model caches
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    """Print audio-seconds/s of the three paths and the two ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    from transformers import HubertConfig, HubertModel

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, data = Path(tmp) / "hubert-base", Path(tmp) / "audio"
        data.mkdir()
        HubertModel(HubertConfig()).save_pretrained(checkpoint)  # HuBERT-Base: 12 blocks, 768-d
        job, waves = _utterances(data, args.utterances)
        seconds = sum(len(w) for w in waves) / 16_000
        ref = ExtractorRef("hubert", str(checkpoint), args.device, {"layer": 6, "batch_size": args.batch_size})
        extractor: Any = extractor_for(ref)
        model = extractor.model  # the same truncated model (blocks 1-6), weights and device

        def loop() -> None:
            with torch.inference_mode():
                for _, path, _ in job.items:
                    wave = soundfile.read(data / path, dtype="float32")[0]
                    model(torch.from_numpy(wave[None]).to(extractor.device)).last_hidden_state.float().cpu()

        runs = iter(range(1_000))

        def flow() -> None:
            settings = ExtractSettings(keep="all", batch_size=args.batch_size)
            extract_shard(Store(f"{tmp}/store"), data, job, f"v{next(runs)}", ref, settings)

        loop_s = _timed(loop)
        bare_s = _timed(lambda: extractor.extract(waves))
        flow_s = _timed(flow)
    print(f"C3 HuBERT-Base layer 6, {args.utterances} utterances, {seconds:.1f} s of audio, {args.device}, batch 8")
    for name, elapsed in (("per-utterance loop", loop_s), ("bare forward", bare_s), ("flow path", flow_s)):
        print(f"  {name:19s} {elapsed:6.1f} s  {seconds / elapsed:6.1f} audio-s/s")
    print(f"  flow / bare ×{bare_s / flow_s:.2f} (target ≥ 0.9), flow / loop ×{loop_s / flow_s:.2f} (target ≥ 1.3)")
    parts = [forward_macs(HubertConfig(), len(wave), layers=6) for wave in waves]
    total = {name: sum(p[name] for p in parts) for name in parts[0]}
    per_4s = {name: value * 4.0 / seconds / 1e9 for name, value in total.items()}
    print(
        f"  arithmetic: {sum(per_4s.values()):.1f} GMAC per 4 s of audio ("
        + ", ".join(f"{name} {value:.2f}" for name, value in per_4s.items())
        + f"); the loop runs {2 * sum(total.values()) / loop_s / 1e9:.0f} GFLOP/s"
    )


if __name__ == "__main__":
    main()
