"""B3: peak RSS of tokenizing a dataset, and how it grows when the dataset grows 8×.

The parent builds a folder of 256×256 JPEGs and a patch-vq codebook (K = 512); each dataset size is then
tokenized in a fresh child process (``ru_maxrss`` is per process), shard after shard of 1,024 images, by the
per-shard function the flow's tasks run. Run: ``.venv/bin/python -m benchmarks.bench_memory [--images 512]``.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SHARD = 1024


def child(folder: Path, images: int) -> None:
    """Tokenize the first ``images`` images of the folder; print the peak RSS in MiB."""
    from storage.store import Store
    from tasks.image_units import TokenizeSettings, tokenize_shard
    from tasks.jobs import ShardJob
    from tasks.models import TokenizerRef

    names = sorted(p.name for p in (folder / "images").iterdir())[:images]
    items = [(name[:-4], name, hashlib.sha256((folder / "images" / name).read_bytes()).hexdigest()) for name in names]
    ref = TokenizerRef("patch-vq", str(folder / "cb"), "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"{tmp}/store")
        for index, start in enumerate(range(0, images, SHARD)):
            job = ShardJob("bench", f"train-{index:05d}", f"f{index}", tuple(items[start : start + SHARD]))
            tokenize_shard(store, folder / "images", job, "v", ref, TokenizeSettings(batch_size=32, io_workers=2))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def build(folder: Path, images: int) -> None:
    """Write the JPEGs and the codebook."""
    from im2sp_models.image_tokenizers.patch_vq import PatchVQ, PatchVQConfig

    rng = np.random.default_rng(0)
    (folder / "images").mkdir()
    tile = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    for i in range(images):
        Image.fromarray(np.roll(tile, i, axis=1)).save(folder / "images" / f"{i:07d}.jpg", "JPEG", quality=85)
    train = list(rng.random((24, 3, 256, 256), dtype=np.float32))
    PatchVQ.train(train, PatchVQConfig(codebook_size=512), seed=0, niter=5).save(folder / "cb")


def main() -> None:
    """Run both sizes in child processes and print the growth."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--child", type=int)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.folder, args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), 8 * args.images)
        peaks = []
        for size in (args.images, 8 * args.images):
            command = [sys.executable, "-m", "benchmarks.bench_memory", "--child", str(size), "--folder", tmp]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            peaks.append(float(output.strip().splitlines()[-1]))
            print(f"{size:6d} images: peak RSS {peaks[-1]:.0f} MiB")
    print(f"growth for 8x the data: {peaks[1] / peaks[0] - 1:+.1%} (target ≤ +10%)")


if __name__ == "__main__":
    main()
