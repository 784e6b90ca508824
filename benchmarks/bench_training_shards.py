"""Training shards vs the Zarr unit stores they are built from, in bytes, at pipeline scale.

One pipeline shard of 1,024 images with 5 utterances each (5,120 samples), written three ways through the
project's writers: image units (Zarr, each image once) + speech units (Zarr runs) — the stores the flow
joins — and the training shard (one sample per utterance: image units, deduplicated speech units, text,
json; ordered by image, as ``tasks/training_shards.py`` writes them) as a plain, gzip and xz tar. Image
codes: uniform over 8,192 (ViT-VQGAN's K) and a Zipf-like stream (s = 1.3, codes permuted); speech: the
HuBERT-like streams of the C4 benchmark; captions: 8–14 words from a 2,000-word vocabulary.
Target: training shards ≤ 1.3 × the Zarr units. Run: ``.venv/bin/python -m benchmarks.bench_training_shards``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.bench_speech_unit_bits import hubert_like
from storage.speech_units_writer import SpeechUnitsWriter
from storage.store import Store
from storage.versions import StoreVersion
from storage.webdataset_writer import COMPRESSIONS, WebDatasetWriter
from storage.zarr_writers import ZarrUnitsWriter
from tasks.training_shards import training_sample


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def image_codes(kind: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` 32 × 32 grids of codes in [0, 8192)."""
    if kind == "uniform":
        return rng.integers(0, 8192, (count, 32, 32)).astype(np.uint16)
    weights = 1.0 / np.arange(1, 8193) ** 1.3
    codes = rng.permutation(8192)[rng.choice(8192, size=(count, 32, 32), p=weights / weights.sum())]
    return codes.astype(np.uint16)


def main() -> None:
    """Print the bytes of each form and the ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--per-image", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vocabulary = [f"w{i}" for i in range(2000)]
    speech = hubert_like(args.images * args.per_image)
    texts = [" ".join(rng.choice(vocabulary, rng.integers(8, 15))) for _ in speech]
    print(f"{args.images} images × {args.per_image} utterances, one pipeline shard")
    for kind in ("uniform", "zipf"):
        grids = image_codes(kind, args.images, rng)
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(tmp)
            images = StoreVersion(store, "bench", "image-units", "v")
            with ZarrUnitsWriter(images, "s", input_fingerprint="b", codec="blosc-zstd-shuffle") as writer:
                for i, grid in enumerate(grids):
                    writer.write(f"img{i:06d}", {"units": grid})
            units = StoreVersion(store, "bench", "speech-units", "v")
            with SpeechUnitsWriter(units, "s", input_fingerprint="b", codebook_size=200) as writer:
                for j, sequence in enumerate(speech):
                    writer.write(f"utt{j:07d}", {"units": sequence})
            zarr_bytes = _bytes(Path(tmp) / "bench")
            sizes = {}
            for compression in COMPRESSIONS:
                version = StoreVersion(store, "bench", f"training-{compression}", "v")
                with WebDatasetWriter(version, "s", input_fingerprint="b", compression=compression) as writer:
                    for j, sequence in enumerate(speech):
                        image = j // args.per_image
                        sample = training_sample(grids[image], sequence, texts[j], f"img{image:06d}", "train")
                        writer.write(f"utt{j:07d}", sample)
                sizes[compression] = _bytes(Path(tmp) / "bench" / f"training-{compression}")
        cells = ", ".join(f"{name} {size / 1e6:.2f} MB (×{size / zarr_bytes:.2f})" for name, size in sizes.items())
        print(f"  image codes {kind}: Zarr units {zarr_bytes / 1e6:.2f} MB; training shard: {cells}")


if __name__ == "__main__":
    main()
