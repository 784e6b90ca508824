"""C5: peak RSS of learn-speech-codebook when the stored features grow 8× (the frame cap stays the same).

The parent writes features stores (39-d float16, like mfcc, 25,000 frames per shard); each size is learned
in a fresh child process (``ru_maxrss`` is per process) with K = 200 and a cap of 100,000 frames.
Run: ``.venv/bin/python -m benchmarks.bench_codebook_memory [--shards 4]``.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile

import numpy as np

FRAMES_PER_SHARD = 25_000
CAP = 100_000


def build(root: str, dataset: str, shards: int) -> None:
    """Write a published features version of ``shards`` shards."""
    from storage.store import Store
    from storage.versions import StoreVersion
    from storage.zarr_writers import ZarrRaggedWriter

    rng = np.random.default_rng(0)
    version = StoreVersion(Store(root), dataset, "speech-features", "v")
    version.ensure_created({"fingerprint": "bench"})
    for index in range(shards):
        with ZarrRaggedWriter(version, f"train-{index:05d}", input_fingerprint="b", row_shape=(39,)) as writer:
            for utterance in range(FRAMES_PER_SHARD // 250):
                writer.write(f"u{utterance}", {"values": rng.normal(size=(250, 39)).astype(np.float16)})
    version.publish([f"train-{i:05d}" for i in range(shards)])


def child(root: str, dataset: str) -> None:
    """Learn the codebook; print peak RSS in MiB."""
    from storage.store import Store
    from tasks.speech_codebook import SpeechCodebookSettings, learn_speech_codebook

    learn_speech_codebook(
        Store(root), [dataset], SpeechCodebookSettings(clusters=200, max_frames=CAP, seed=0, niter=10)
    )
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    """Build both sizes, learn each in a child, print the growth."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        peaks = []
        for name, shards in (("small", args.shards), ("large", 8 * args.shards)):
            build(tmp, name, shards)
            command = [sys.executable, "-m", "benchmarks.bench_codebook_memory", "--child", tmp, name]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            peaks.append(float(output.strip().splitlines()[-1]))
            print(f"{shards * FRAMES_PER_SHARD:9d} stored frames: peak RSS {peaks[-1]:.0f} MiB")
    print(f"growth for 8x the features: {peaks[1] / peaks[0] - 1:+.1%} (target ≤ +10%)")


if __name__ == "__main__":
    main()
