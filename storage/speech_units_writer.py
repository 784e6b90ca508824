"""Speech-unit shard writer: units stored once, as runs (deduplicated unit + run length), in ragged Zarr arrays.

Arrays in ``shards/<shard_id>/`` (layout 2): ``dedup`` (the unit of each run of equal consecutive units),
``runs`` (each run's length) and ``offsets`` (item ``i`` owns runs ``offsets[i]:offsets[i+1]``). The full-rate
sequence is ``expand(dedup, runs)`` — lossless, so it is derived on read rather than stored a second time.
Per-utterance statistics (frames, deduplicated length, unit entropy) are derived the same way
(:func:`utterance_stats`). Layout 1 (full-rate ``units`` stored beside the runs) is still read.

Each array is one plain Zarr chunk (one file), without the sharding codec: a speech-units shard is small
(~30 bytes per second of speech), and sharded-array metadata (~900 bytes an array) would outweigh the data of
a small shard. Concurrent writers still never share a file: every pipeline shard is its own Zarr group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from storage.dedup import dedup, expand, unit_entropy
from storage.errors import CorruptShardError
from storage.versions import StoreVersion
from storage.writer import SampleRejected, ShardWriter
from storage.zarr_arrays import AUTO, AUTO_CANDIDATES, smallest_codec, write_whole_array

#: The shard layout this writer produces (``extra["layout"]`` of its markers; absent = layout 1).
LAYOUT = 2
#: Per shard and array, the smallest of blosc-zstd (shuffle / bit-shuffle) and ``im2sp-ans``.
SPEECH_UNITS_CODEC = AUTO


def _offsets(lengths: list[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _split_long_runs(values: np.ndarray, runs: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Split runs longer than ``limit`` into repeats of the same unit, so run lengths fit their dtype."""
    if runs.size == 0 or int(runs.max()) <= limit:
        return values, runs
    pieces = -(-runs // limit)
    values = np.repeat(values, pieces)
    split = np.full(int(pieces.sum()), limit, dtype=np.int64)
    ends = np.cumsum(pieces) - 1
    split[ends] = runs - (pieces - 1) * limit
    return values, split


def utterance_stats(values: np.ndarray, runs: np.ndarray) -> tuple[int, int, float]:
    """Return ``(frames, dedup_length, entropy_bits)`` of one item.

    Full-rate length, number of runs of distinct consecutive units, and the order-0 entropy of the full-rate
    units in bits per unit (4 decimals).
    """
    frames = int(np.asarray(runs, dtype=np.int64).sum())
    distinct = int(np.count_nonzero(values[1:] != values[:-1])) + 1 if values.size else 0
    return frames, distinct, round(unit_entropy(expand(values, runs)), 4)


class SpeechUnitsWriter(ShardWriter):
    """Writes ``{"units": 1-D integer array}`` samples; the codebook size picks uint8 (K ≤ 256) or uint16.

    Args:
        version: The store version.
        shard_id: The pipeline shard id.
        input_fingerprint: Hash of the shard's inputs.
        model_fingerprint: The codebook id.
        codebook_size: K; units must lie in ``[0, K)``.
        codec: Codec name for ``dedup`` and ``runs`` (``auto`` picks per shard and array).
    """

    store_kind = "speech-units"

    def __init__(
        self,
        version: StoreVersion,
        shard_id: str,
        *,
        input_fingerprint: str,
        model_fingerprint: str | None = None,
        codebook_size: int = 200,
        codec: str = SPEECH_UNITS_CODEC,
    ) -> None:
        super().__init__(version, shard_id, input_fingerprint=input_fingerprint, model_fingerprint=model_fingerprint)
        self.codebook_size = codebook_size
        self.dtype = np.dtype("uint8" if codebook_size <= 256 else "uint16")
        self.codec = codec
        self._values: list[np.ndarray] = []
        self._runs: list[np.ndarray] = []
        self._frames = 0

    def _add(self, key: str, sample: Mapping[str, Any]) -> None:
        units = np.asarray(sample["units"])
        if units.ndim != 1 or units.dtype.kind not in "iu":
            raise SampleRejected(f"units must be a 1-D integer array, got {units.dtype} {units.shape}")
        if units.size and (units.min() < 0 or units.max() >= self.codebook_size):
            raise SampleRejected(f"units outside [0, {self.codebook_size})")
        values, runs = dedup(units.astype(self.dtype))
        self._values.append(values)
        self._runs.append(runs)
        self._frames += int(units.size)

    def _flush(self) -> dict[str, Any]:
        longest = max((int(r.max()) for r in self._runs if r.size), default=1)
        runs_dtype = np.dtype("uint8" if longest <= 0xFF else "uint16")
        limit = int(np.iinfo(runs_dtype).max)
        pairs = [_split_long_runs(v, r, limit) for v, r in zip(self._values, self._runs, strict=True)]
        arrays = {
            "dedup": np.concatenate([v for v, _ in pairs]) if pairs else np.zeros(0, self.dtype),
            "runs": np.concatenate([r for _, r in pairs]).astype(runs_dtype) if pairs else np.zeros(0, runs_dtype),
            "offsets": _offsets([len(v) for v, _ in pairs]),
        }
        group = zarr.open_group(self.version.store.zarr_store(self.shard_key), mode="w", zarr_format=3)
        codecs = {}
        for name, data in arrays.items():
            codec = self.codec if name != "offsets" else "blosc-zstd-shuffle"
            if codec == AUTO:
                codec = smallest_codec(data, AUTO_CANDIDATES, lambda _codec, _data: len(_data), sharded=False)
            write_whole_array(group, name, data, chunk_rows=len(data), codec=codec, sharded=False)
            codecs[name] = codec
        self._values, self._runs = [], []
        return {
            "layout": LAYOUT,
            "codebook_size": self.codebook_size,
            "dtype": str(self.dtype),
            "codecs": codecs,
            "frames": self._frames,
            "runs": int(arrays["dedup"].size),
        }

    def _discard(self) -> None:
        self._values, self._runs = [], []


def read_speech_units(version: StoreVersion, shard_id: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Return ``{key: (units, dedup values, runs)}`` of a committed speech-units shard (verified).

    ``units`` is the full-rate sequence, ``expand(dedup values, runs)``.
    """
    from storage.reader import verify_shard

    marker = verify_shard(version, shard_id)
    layout = int(marker.extra.get("layout", 1))
    if layout not in (1, LAYOUT):
        raise CorruptShardError(f"{version.url}/{shard_id}: speech-units layout {layout} is unknown to this reader")
    names = ("dedup", "runs", "offsets" if layout == LAYOUT else "dedup_offsets")
    group = zarr.open_group(version.store.zarr_store(version.shard_key(shard_id), read_only=True), mode="r")
    dedup_values, runs, offsets = (np.asarray(group[name][...]) for name in names)  # type: ignore[index]
    if len(offsets) != marker.stored + 1 or int(offsets[-1]) != len(dedup_values) or len(runs) != len(dedup_values):
        raise CorruptShardError(f"{version.url}/{shard_id}: offsets do not match the marker's {marker.stored} keys")
    out = {}
    for i, key in enumerate(marker.keys):
        values, lengths = dedup_values[offsets[i] : offsets[i + 1]], runs[offsets[i] : offsets[i + 1]]
        out[key] = (expand(values, lengths).astype(dedup_values.dtype), values, lengths)
    return out


def stored_frames(extra: Mapping[str, Any]) -> int:
    """Full-rate frames a speech-units marker accounts for (either layout)."""
    if "frames" in extra:
        return int(extra["frames"])
    return sum(int(stats[0]) for stats in extra.get("stats", {}).values())
