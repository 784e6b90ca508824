"""C4: speech units on disk, in bits per second of speech (target ≤ 256, i.e. ≤ 0.10 % of 16 kHz 16-bit PCM).

Writes unit streams through the speech-units writer at several shard sizes and counts every byte of the
version (runs, offsets, Zarr metadata, commit markers, version.json), split into payload (the chunk files),
commit markers (which hold the keys) and the rest (Zarr metadata, version.json). Keys come in two shapes:
``short`` (``utterance-0001234``) and ``spokencoco`` (SpokenCOCO's uttid shape,
``<21-char speaker>-<30-char HIT id>_<image id>_<caption id>``, with a fresh random HIT id per utterance:
the worst case for compression). Streams:

- ``hubert-like``: 4-second utterances (SpokenCOCO's mean) at 50 frames/s, K = 200, unit frequencies Zipf-like
  with an order-0 entropy of about 7.2 bits and geometric run lengths of mean 1.9 frames (HuBERT-Base layer-6
  units deduplicate to roughly half their length);
- ``store``: the units of an existing speech-units version (``--store URL --dataset NAME``), e.g. the demo's
  mfcc units, re-sharded at each size.

Run: ``.venv/bin/python -m benchmarks.bench_speech_unit_bits [--store demo-work/store --dataset coco]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from storage.dedup import unit_entropy
from storage.kinds import SPEECH_UNITS
from storage.speech_units_writer import SpeechUnitsWriter, read_speech_units
from storage.store import Store
from storage.versions import StoreVersion, current_version

FRAMES_PER_SECOND = 50


def hubert_like(utterances: int, seed: int = 0) -> list[np.ndarray]:
    """Unit streams with HuBERT-like statistics (see the module docstring)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 201) ** 0.7
    weights = rng.permutation(weights / weights.sum())
    out = []
    for _ in range(utterances):
        runs = rng.geometric(1 / 1.9, size=4 * FRAMES_PER_SECOND)
        values = rng.choice(200, size=runs.size, p=weights)
        out.append(np.repeat(values, runs)[: 4 * FRAMES_PER_SECOND])
    return out


def from_store(url: str, dataset: str) -> list[np.ndarray]:
    """Full-rate unit sequences of a dataset's current speech-units version."""
    store = Store(url)
    version = current_version(store, dataset, SPEECH_UNITS)
    if version is None:
        raise SystemExit(f"{url}: no published speech units for {dataset}")
    return [units for shard in version.committed() for units, _, _ in read_speech_units(version, shard).values()]


def short_keys(count: int) -> list[str]:
    """Sequential keys: the best case for the markers' packed key lists."""
    return [f"utterance-{i:07d}" for i in range(count)]


def spokencoco_keys(count: int, seed: int = 0) -> list[str]:
    """Keys in SpokenCOCO's uttid shape, sorted as the shard plan sorts them; one random HIT id each."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    speakers = ["m" + "".join(rng.choice(alphabet, 20)).lower() for _ in range(2_350)]
    keys: set[str] = set()
    while len(keys) < count:
        keys.add(
            f"{speakers[rng.integers(len(speakers))]}-{''.join(rng.choice(alphabet, 30))}"
            f"_{rng.integers(1, 581_930)}_{rng.integers(1, 830_000)}"
        )
    return sorted(keys)


def stored_bits_per_second(streams: list[np.ndarray], keys: list[str], shard_size: int) -> dict[str, float]:
    """Bit/s of a version holding ``streams`` in shards of ``shard_size``: all, payload, markers, other."""
    with tempfile.TemporaryDirectory() as tmp:
        version = StoreVersion(Store(tmp), "bench", SPEECH_UNITS, "v")
        version.ensure_created({"bench": True})
        for start in range(0, len(streams), shard_size):
            with SpeechUnitsWriter(version, f"train-{start:05d}", input_fingerprint="b", codebook_size=200) as w:
                members = slice(start, start + shard_size)
                for key, units in zip(keys[members], streams[members], strict=True):
                    w.write(key, {"units": units})
        sizes = {p: p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()}
    seconds = sum(len(s) for s in streams) / FRAMES_PER_SECOND
    parts = {
        "all": sum(sizes.values()),
        "payload": sum(size for p, size in sizes.items() if p.parent.name == "c"),
        "markers": sum(size for p, size in sizes.items() if p.parent.name == "commits"),
    }
    parts["other"] = parts["all"] - parts["payload"] - parts["markers"]
    return {name: size * 8 / seconds for name, size in parts.items()}


def main() -> None:
    """Print bit/s per stream and shard size."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=4096)
    parser.add_argument("--store")
    parser.add_argument("--dataset", default="coco")
    args = parser.parse_args()
    streams = {"hubert-like": hubert_like(args.utterances)}
    if args.store:
        streams[f"store {args.dataset}"] = from_store(args.store, args.dataset)
    print("C4: speech units on disk, bit per second of speech (target ≤ 256); payload = chunk files only")
    for name, units in streams.items():
        flat = np.concatenate(units)
        runs = sum(int(np.count_nonzero(np.diff(u)) + 1) for u in units)
        seconds = len(flat) / FRAMES_PER_SECOND
        print(
            f"  {name}: {len(units)} utterances, {seconds:.0f} s, H0 {unit_entropy(flat):.2f} bit/frame, "
            f"{runs / len(flat):.2f} runs per frame"
        )
        for key_shape, keys in (("short", short_keys(len(units))), ("spokencoco", spokencoco_keys(len(units)))):
            for shard_size in (16, 256, 1024):
                if shard_size > 4 * len(units):
                    continue
                bits = stored_bits_per_second(units, keys, shard_size)
                print(
                    f"    {key_shape:10s} keys, shards of {shard_size:5d}: {bits['all']:6.1f} bit/s "
                    f"({bits['all'] / 256_000:.3%} of PCM) = payload {bits['payload']:6.1f} + markers "
                    f"{bits['markers']:5.1f} + metadata {bits['other']:5.1f}"
                )


if __name__ == "__main__":
    main()
