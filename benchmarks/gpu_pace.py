"""GPU pace (issue 18): tokenize-images with ViT-VQGAN base and HuBERT-Base layer-6 features, one prepared run.

Random weights cost the same as trained ones. Every path is timed after a warm-up, in fp32 (TF32 off) and
bf16 (autocast), against the bare model forward in the same run, and reported with its model FLOPs ÷ time
as a fraction of the chip's dense bf16 peak (``--peak``, default an H200's 989 TFLOP/s):

images (640×480 photo-like JPEGs, synthesised in memory; targets: pipeline ≥ 1,500 images/s in bf16)
- bare encoder: ``encode_codes`` on pixels already resized and on the device;
- pipeline: JPEG bytes in memory → decode (nvJPEG on the GPU when torchvision has it, ``decoder: nvjpeg``;
  else PIL in ``--workers`` threads) → resize → encode → ids on the host;
- shard: the tokenize-images task on the same JPEGs as files (read, sha256, decode, encode, Zarr, commit);

speech (utterances of 2–6 s, SpokenCOCO's range; target: extractor ≥ 15,000 audio-s/s in bf16)
- bare forward: the truncated model on padded batches already on the device (the extractor's own length
  buckets), outputs left there;
- extractor: ``extract`` on waveforms in memory (length buckets within a ``--batch-frames`` budget, fused
  attention, the conv stack on the padded batch, features back on the host); its padding share is shown;
- shard: the extract-speech-features task on the same utterances as WAV files (``keep: all``).

Run: ``python -m benchmarks.gpu_pace [--device cuda] [--images 2048] [--utterances 1024] [--json OUT]``;
a CPU smoke run: ``--device cpu --images 8 --utterances 8`` (``--small`` swaps in tiny architectures).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_hubert_throughput import forward_macs
from benchmarks.gpu_speech_check import timed
from im2sp_models.errors import ItemRejected
from im2sp_models.gpu_jpeg import EncodedJpeg, gpu_decodable, nvjpeg_problem, pixel_batch
from im2sp_models.image_preprocess import decode_image
from im2sp_models.image_tokenizers.vit_vqgan_net import PRESETS, ViTVQ, ViTVQConfig
from storage.store import Store
from tasks.image_units import TokenizeSettings, tokenize_shard
from tasks.jobs import ShardJob
from tasks.models import ExtractorRef, TokenizerRef, extractor_for, tokenizer_for
from tasks.prefetch import loaded_batches
from tasks.speech_features import ExtractSettings, extract_shard

SMALL_VIT = ViTVQConfig(enc_dim=64, enc_depth=2, enc_heads=1, enc_mlp=128, dec_dim=64, dec_depth=1, dec_heads=1)
SMALL_HUBERT: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 6,
    "num_attention_heads": 2,
    "intermediate_size": 128,
}


def _flops(run: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:  # inference_mode trips weight_norm here
        run()
    return int(counter.get_total_flops())


def encoder_flops(c: ViTVQConfig) -> int:
    """FLOPs (2 × multiply-accumulates) of one image through ``encode_codes``: patches, blocks, quantizer."""
    tokens = c.grid**2
    macs = tokens * c.enc_dim * 3 * c.patch_size**2  # patch embedding
    per_block = tokens * (4 * c.enc_dim * c.enc_heads * 64 + 2 * c.enc_dim * c.enc_mlp)  # qkv, out, MLP
    per_block += 2 * tokens * tokens * c.enc_heads * 64  # scores and their weighted sum
    macs += c.enc_depth * per_block
    macs += tokens * (c.enc_dim * c.embed_dim + c.embed_dim * c.n_embed)  # pre_quant, nearest code
    return 2 * macs


def _photos(count: int, distinct: int = 32) -> list[bytes]:
    """640×480 JPEGs (quality 90) of smooth colour fields and a little noise, ~60-100 KB like photos."""
    rng = np.random.default_rng(0)
    made = []
    for _ in range(min(count, distinct)):
        coarse = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((640, 480), Image.Resampling.BICUBIC), dtype=np.float32)
        noisy = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noisy).save(buffer, "JPEG", quality=90)
        made.append(buffer.getvalue())
    return [made[i % len(made)] for i in range(count)]


def _jpeg_pipeline(tokenizer: Any, jpegs: list[bytes], batch: int, workers: int, nvjpeg: bool) -> None:
    """Bytes in memory → pixels (nvJPEG, or PIL in threads) → units on the host, loading overlapping compute."""

    def load(entry: tuple[str, bytes]) -> tuple[str, np.ndarray | EncodedJpeg | str]:
        key, data = entry
        if nvjpeg and gpu_decodable(data):
            return key, EncodedJpeg(data)
        try:
            return key, decode_image(data)
        except ItemRejected as verdict:
            return key, str(verdict)

    entries = [(str(i), data) for i, data in enumerate(jpegs)]
    with ThreadPoolExecutor(workers) as pool:
        batches: Iterator[list[tuple[str, np.ndarray | EncodedJpeg]]]
        batches = loaded_batches(pool, load, entries, batch, lambda key, reason: None)
        for items in batches:
            pixels = pixel_batch([item for _, item in items], tokenizer.device, decode_image)
            tokenizer.encode_pixels(pixels.pixels)


@dataclass(frozen=True)
class ImageSetup:
    """What both precisions' image runs share."""

    checkpoint: Path
    jpegs: list[bytes]
    root: Path
    job: ShardJob
    warm_job: ShardJob
    pixels: Any
    decoder: str


def images(args: argparse.Namespace, tmp: Path, report: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """Rows (precision, path, images/s, MFU) of the three image paths in fp32 and bf16."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    config = SMALL_VIT if args.small else PRESETS["base"]
    save_file({k: v.contiguous() for k, v in ViTVQ(config).state_dict().items()}, tmp / "vit.safetensors")
    jpegs = _photos(args.images)
    root = tmp / "images"
    root.mkdir()
    items = []
    for i, data in enumerate(jpegs):
        (root / f"{i:06d}.jpg").write_bytes(data)
        items.append((f"{i:06d}", f"{i:06d}.jpg", hashlib.sha256(data).hexdigest()))
    problem = nvjpeg_problem(args.device)
    report["decoder"] = f"pil ({problem})" if problem else "nvjpeg"
    setup = ImageSetup(
        tmp / "vit.safetensors",
        jpegs,
        root,
        ShardJob("pace", "train-00000", "pace", tuple(items)),
        ShardJob("pace", "train-00001", "pace", tuple(items[: min(args.images, args.image_batch)])),
        torch.rand((min(args.images, args.image_batch), 3, 256, 256), device=args.device),
        "pil" if problem else "nvjpeg",
    )
    return [row for precision in ("fp32", "bf16") for row in _image_rows(args, tmp, setup, precision, report)]


def _image_rows(
    args: argparse.Namespace, tmp: Path, setup: ImageSetup, precision: str, report: dict[str, Any]
) -> list[tuple[str, str, float, float]]:
    from im2sp_models.device import compute_precision

    device, count, batch, pixels = args.device, args.images, args.image_batch, setup.pixels
    options = {"precision": precision, "forward_batch": batch, "decoder": setup.decoder}
    ref = TokenizerRef("vit-vqgan", str(setup.checkpoint), device, options)
    tokenizer: Any = tokenizer_for(ref)
    per_image = encoder_flops(tokenizer.net.config)
    report["gflop_per_image"] = per_image / 1e9
    if precision == "fp32":  # FlopCounterMode misses attention kernels it has no formula for (the CPU's sdpa)
        report["image_flop_counter_vs_analytic"] = round(
            _flops(lambda: tokenizer.encode_pixels(pixels[:2])) / 2 / per_image, 4
        )

    def bare(n: int = count) -> None:
        with torch.inference_mode(), compute_precision(device, precision):
            for start in range(0, n, len(pixels)):
                tokenizer.net.encode_codes(pixels[: min(len(pixels), n - start)])

    def pipeline(data: list[bytes] = setup.jpegs) -> None:
        _jpeg_pipeline(tokenizer, data, batch, args.workers, setup.decoder == "nvjpeg")

    runs = iter(range(1000))

    def shard(job: ShardJob = setup.job) -> None:
        settings = TokenizeSettings(batch_size=batch, io_workers=args.workers)
        tokenize_shard(Store(str(tmp / "store")), setup.root, job, f"{precision}-{next(runs)}", ref, settings)

    timings = {
        "bare encoder": timed(bare, device, lambda: bare(min(count, batch))),
        "pipeline": timed(pipeline, device, lambda: pipeline(setup.jpegs[:batch])),
        "shard": timed(shard, device, lambda: shard(setup.warm_job)),
    }
    rows = []
    for name, seconds in timings.items():
        mfu = per_image * count / seconds / args.peak
        rows.append((precision, name, count / seconds, mfu))
        report["images"].setdefault(precision, {})[name] = {
            "images_per_s": round(count / seconds, 2),
            "mfu_bf16_peak": round(mfu, 4),
        }
    return rows


def _waves(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(0, 0.1, int(rng.uniform(2.0, 6.0) * 16_000)).astype(np.float32) for _ in range(count)]


def _padded_batches(extractor: Any, waves: list[np.ndarray]) -> list[tuple[Any, Any]]:
    """The extractor's own length buckets, padded, on the device: ``(input_values, attention_mask)`` each."""
    lengths = [extractor._frame_count(len(w)) for w in waves]
    prepared = []
    for group in extractor._groups(lengths):
        parts = [torch.from_numpy(waves[i]) for i in group]
        values = torch.nn.utils.rnn.pad_sequence(parts, batch_first=True).to(extractor.device)
        mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(p), dtype=torch.long) for p in parts], batch_first=True)
        prepared.append((values, mask.to(extractor.device)))
    return prepared


@dataclass(frozen=True)
class SpeechSetup:
    """What both precisions' speech runs share."""

    checkpoint: Path
    config: Any
    waves: list[np.ndarray]
    root: Path
    job: ShardJob
    warm_job: ShardJob
    model_flops: float


def speech(args: argparse.Namespace, tmp: Path, report: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """Rows (precision, path, audio-s/s, MFU) of the three speech paths in fp32 and bf16."""
    import soundfile
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    config = HubertConfig(**SMALL_HUBERT) if args.small else HubertConfig()  # HuBERT-Base: 12 × 768
    HubertModel(config).save_pretrained(tmp / "hubert")
    waves = _waves(args.utterances)
    seconds = sum(len(w) for w in waves) / 16_000
    model_flops = 2 * sum(sum(forward_macs(config, len(w), layers=6).values()) for w in waves)
    report["gflop_per_audio_second"] = model_flops / seconds / 1e9
    report["audio_seconds"] = round(seconds, 1)
    root = tmp / "audio"
    root.mkdir()
    items = []
    for i, wave in enumerate(waves):
        buffer = io.BytesIO()
        soundfile.write(buffer, wave, 16_000, subtype="PCM_16", format="WAV")
        (root / f"u{i}.wav").write_bytes(buffer.getvalue())
        items.append((f"u{i}", f"u{i}.wav", hashlib.sha256(buffer.getvalue()).hexdigest()))
    setup = SpeechSetup(
        tmp / "hubert",
        config,
        waves,
        root,
        ShardJob("pace", "train-00000", "pace", tuple(items)),
        ShardJob("pace", "train-00001", "pace", tuple(items[:4])),
        model_flops,
    )
    return [row for precision in ("fp32", "bf16") for row in _speech_rows(args, tmp, setup, precision, report)]


def _speech_rows(
    args: argparse.Namespace, tmp: Path, setup: SpeechSetup, precision: str, report: dict[str, Any]
) -> list[tuple[str, str, float, float]]:
    from im2sp_models.device import compute_precision

    device, waves = args.device, setup.waves
    options: dict[str, Any] = {"layer": 6, "batch_size": args.utterance_batch, "precision": precision}
    if args.batch_frames:
        options["max_batch_frames"] = args.batch_frames
    ref = ExtractorRef("hubert", str(setup.checkpoint), device, options)
    extractor: Any = extractor_for(ref)
    if precision == "fp32":
        counted = _flops(lambda: extractor.model(torch.from_numpy(waves[0][None]).to(device)))
        expected = 2 * sum(forward_macs(setup.config, len(waves[0]), layers=6).values())
        report["speech_flop_counter_vs_analytic"] = round(counted / expected, 4)
    batches = _padded_batches(extractor, waves)

    def bare(prepared: list[tuple[Any, Any]] = batches) -> None:
        with torch.inference_mode(), compute_precision(device, precision):
            for values, mask in prepared:
                extractor.model(values, attention_mask=mask)

    runs = iter(range(1000))

    def shard(job: ShardJob = setup.job) -> None:
        settings = ExtractSettings(keep="all", batch_size=args.utterance_batch, io_workers=args.workers)
        extract_shard(Store(str(tmp / "store")), setup.root, job, f"{precision}-{next(runs)}", ref, settings)

    timings = {"bare forward": timed(bare, device, lambda: bare(batches[:1]))}
    extractor.extract(waves[:4])
    valid, computed = extractor._frames
    timings["extractor"] = timed(lambda: extractor.extract(waves), device, lambda: None)
    padding = 1 - (extractor._frames[0] - valid) / max(extractor._frames[1] - computed, 1)
    report.setdefault("speech_padding", {})[precision] = round(padding, 4)
    timings["shard"] = timed(shard, device, lambda: shard(setup.warm_job))
    seconds = sum(len(w) for w in waves) / 16_000
    rows = []
    for name, elapsed in timings.items():
        mfu = setup.model_flops / elapsed / args.peak
        rows.append((precision, name, seconds / elapsed, mfu))
        report["speech"].setdefault(precision, {})[name] = {
            "audio_s_per_s": round(seconds / elapsed, 1),
            "mfu_bf16_peak": round(mfu, 4),
        }
    return rows


def _table(title: str, unit: str, rows: list[tuple[str, str, float, float]], target: float | None) -> None:
    print(f"\n{title}")
    print(f"  {'precision':9s} {'path':14s} {unit:>14s} {'× bare':>7s} {'MFU (bf16 peak)':>16s}")
    bare = {precision: rate for precision, _, rate, _ in rows[::3]}
    for precision, name, rate, mfu in rows:
        print(f"  {precision:9s} {name:14s} {rate:14.1f} {rate / bare[precision]:7.2f} {mfu:16.2%}")
    if target is not None:
        best = max(rate for precision, name, rate, _ in rows if precision == "bf16" and name != rows[0][1])
        verdict = "met" if best >= target else "NOT met"
        print(f"  target {target:,.0f} {unit} (bf16): best non-bare path {best:,.0f} → {verdict}")


def main() -> None:
    """Run both halves, print the tables and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--utterances", type=int, default=1024)
    parser.add_argument("--image-batch", type=int, default=128, help="images per loaded batch and per forward")
    parser.add_argument("--utterance-batch", type=int, default=1024, help="utterances per batch at most")
    parser.add_argument("--batch-frames", type=int, default=None, help="padded frames per batch (default: ours)")
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1), help="decoding threads")
    parser.add_argument("--peak", type=float, default=989e12, help="the chip's dense bf16 FLOP/s")
    parser.add_argument("--small", action="store_true", help="tiny architectures (smoke runs)")
    parser.add_argument("--skip", choices=["images", "speech"], default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON line here")
    args = parser.parse_args()
    on_cuda = args.device.startswith("cuda")
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if on_cuda else "cpu",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "images": {},
        "speech": {},
        "small": args.small,
    }
    print(f"gpu_pace on {report['device']}, torch {report['torch']}, {args.workers} decoding threads")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if args.skip != "images":
            rows = images(args, tmp, report)
            print(f"  image decoder: {report['decoder']}")
            title = f"tokenize-images, ViT-VQGAN {'small' if args.small else 'base'}, {args.images} 640×480 JPEGs"
            _table(title, "images/s", rows, 1500.0 if on_cuda else None)
            print(
                f"  {report['gflop_per_image']:.1f} GFLOP per image (analytic; FlopCounterMode / analytic on one "
                f"batch {report['image_flop_counter_vs_analytic']:.3f})"
            )
        if args.skip != "speech":
            rows = speech(args, tmp, report)
            title = f"HuBERT {'small' if args.small else 'Base'} layer 6, {args.utterances} utterances"
            _table(
                f"{title}, {report['audio_seconds']:.0f} s of audio", "audio-s/s", rows, 15000.0 if on_cuda else None
            )
            print(
                f"  {report['gflop_per_audio_second']:.1f} GFLOP per audio-second (analytic; FlopCounterMode / "
                f"analytic on one utterance {report['speech_flop_counter_vs_analytic']:.3f}); extractor padding "
                + ", ".join(f"{p} {v:.1%}" for p, v in report["speech_padding"].items())
            )
    line = json.dumps(report, sort_keys=True)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")


if __name__ == "__main__":
    main()
