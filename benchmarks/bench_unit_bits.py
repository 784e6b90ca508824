"""B2: bits per stored token of image units, per codec, against the tokens' order-0 entropy.

Every byte of the store version counts (Zarr metadata, commit markers with their key lists, version.json).
Streams: uniform over 8192 codes, a Zipf-like stream over 8192 codes, and the sample data's patch-vq tokens.
Target (issue B2): bits/token ≤ min(ceil(log2 K), 1.05 × H0) + 0.2.
Run: ``.venv/bin/python -m benchmarks.bench_unit_bits [--images 2048]``.
"""

from __future__ import annotations

import argparse
import math
import tempfile

import numpy as np

from im2sp_models.image_preprocess import decode_image
from im2sp_models.image_tokenizers.patch_vq import PatchVQ, PatchVQConfig
from storage.sample.photos import sample_images
from storage.store import Store
from storage.versions import StoreVersion
from storage.zarr_writers import ZarrUnitsWriter

CODECS = ("none", "blosc-zstd-shuffle", "blosc-zstd-bitshuffle", "ans", "auto")
SHARD = 1024


def entropy(tokens: np.ndarray) -> float:
    """Order-0 entropy in bits per token."""
    counts = np.bincount(tokens.reshape(-1).astype(np.int64))
    p = counts[counts > 0] / tokens.size
    return float(-(p * np.log2(p)).sum())


def bits_per_token(tokens: np.ndarray, codec: str) -> float:
    """Write tokens through the real writer in 1,024-image shards; return disk bits per token."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        version = StoreVersion(store, "bench", "image-units", codec)
        version.ensure_created({"codec": codec})
        for index, start in enumerate(range(0, len(tokens), SHARD)):
            with ZarrUnitsWriter(version, f"train-{index:05d}", input_fingerprint="b", codec=codec) as writer:
                for offset, grid in enumerate(tokens[start : start + SHARD]):
                    writer.write(f"{start + offset:012d}", {"units": grid})
        version.publish([f"train-{i:05d}" for i in range(math.ceil(len(tokens) / SHARD))])
        return store.disk_usage(f"bench/image-units/{codec}") * 8 / tokens.size


def sample_tokens() -> np.ndarray:
    """Tokens of the sample photos under a patch-vq codebook learned from them (K = 512)."""
    import io

    images = []
    for image in sample_images():
        buffer = io.BytesIO()
        image.render().save(buffer, "PNG")
        images.append(decode_image(buffer.getvalue()))
    tokenizer = PatchVQ.train(images, PatchVQConfig(codebook_size=512), seed=0)
    return tokenizer.encode(np.stack(images))


def main() -> None:
    """Print bits per token per stream and codec, with the target."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2048)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    zipf_ranks = np.minimum(rng.zipf(1.3, size=(args.images, 32, 32)), 8192) - 1
    streams = {
        "uniform-8192": (rng.integers(0, 8192, (args.images, 32, 32)), 8192),
        "zipf-8192": (rng.permutation(8192)[zipf_ranks], 8192),
        "sample-patch-vq-512": (sample_tokens(), 512),
    }
    print(f"{'stream':22} {'K':>5} {'H0':>6} {'target':>7} " + " ".join(f"{c:>22}" for c in CODECS))
    for name, (tokens, k) in streams.items():
        h0 = entropy(tokens)
        target = min(math.ceil(math.log2(k)), 1.05 * h0) + 0.2
        cells = []
        for codec in CODECS:
            bits = bits_per_token(tokens, codec)
            cells.append(f"{bits:6.2f} {'ok' if bits <= target else 'over':>4}")
        print(f"{name:22} {k:5d} {h0:6.2f} {target:7.2f} " + " ".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
