"""Speech-unit shard writer: full-rate units and their run-length deduplication, as ragged Zarr arrays.

Arrays in ``shards/<shard_id>/``: ``units`` + ``units_offsets`` (full rate, one unit per 20 ms frame),
``dedup`` + ``runs`` + ``dedup_offsets`` (consecutive repeats removed, with each run's length, lossless).
Per-utterance statistics (frames, deduplicated length, unit entropy) go into the marker's ``extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from storage.dedup import dedup, unit_entropy
from storage.errors import CorruptShardError
from storage.versions import StoreVersion
from storage.writer import SampleRejected, ShardWriter
from storage.zarr_arrays import DEFAULT_CODEC, write_whole_array


def _offsets(lengths: list[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


class SpeechUnitsWriter(ShardWriter):
    """Writes ``{"units": 1-D integer array}`` samples; the codebook size picks uint8 (K ≤ 256) or uint16.

    Args:
        version: The store version.
        shard_id: The pipeline shard id.
        input_fingerprint: Hash of the shard's inputs.
        model_fingerprint: The codebook id.
        codebook_size: K; units must lie in ``[0, K)``.
        codec: Codec name.
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
        codec: str = DEFAULT_CODEC,
    ) -> None:
        super().__init__(version, shard_id, input_fingerprint=input_fingerprint, model_fingerprint=model_fingerprint)
        self.codebook_size = codebook_size
        self.dtype = np.dtype("uint8" if codebook_size <= 256 else "uint16")
        self.codec = codec
        self._units: list[np.ndarray] = []
        self._stats: dict[str, list[float]] = {}

    def _add(self, key: str, sample: Mapping[str, Any]) -> None:
        units = np.asarray(sample["units"])
        if units.ndim != 1 or units.dtype.kind not in "iu":
            raise SampleRejected(f"units must be a 1-D integer array, got {units.dtype} {units.shape}")
        if units.size and (units.min() < 0 or units.max() >= self.codebook_size):
            raise SampleRejected(f"units outside [0, {self.codebook_size})")
        self._units.append(units.astype(self.dtype))
        self._stats[key] = [int(units.size), int(dedup(units)[0].size), round(unit_entropy(units), 4)]

    def _flush(self) -> dict[str, Any]:
        pairs = [dedup(u) for u in self._units]
        runs = [r.astype(np.uint32) for _, r in pairs]
        group = zarr.open_group(self.version.store.zarr_store(self.shard_key), mode="w", zarr_format=3)
        arrays = {
            "units": np.concatenate(self._units) if self._units else np.zeros(0, self.dtype),
            "units_offsets": _offsets([len(u) for u in self._units]),
            "dedup": np.concatenate([v for v, _ in pairs]) if pairs else np.zeros(0, self.dtype),
            "runs": np.concatenate(runs) if runs else np.zeros(0, np.uint32),
            "dedup_offsets": _offsets([len(v) for v, _ in pairs]),
        }
        for name, data in arrays.items():
            write_whole_array(group, name, data, chunk_rows=1 << 16, codec=self.codec)
        self._units = []
        return {
            "codebook_size": self.codebook_size,
            "dtype": str(self.dtype),
            "codec": self.codec,
            "stats_columns": ["frames", "dedup_length", "entropy_bits"],
            "stats": self._stats,
        }

    def _discard(self) -> None:
        self._units = []


def read_speech_units(version: StoreVersion, shard_id: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Return ``{key: (units, dedup values, runs)}`` of a committed speech-units shard (verified)."""
    from storage.reader import verify_shard

    marker = verify_shard(version, shard_id)
    group = zarr.open_group(version.store.zarr_store(version.shard_key(shard_id), read_only=True), mode="r")
    data = {name: np.asarray(group[name][...]) for name in ("units", "units_offsets", "dedup", "runs", "dedup_offsets")}  # type: ignore[index]
    if len(data["units_offsets"]) != marker.stored + 1 or len(data["dedup_offsets"]) != marker.stored + 1:
        raise CorruptShardError(f"{version.url}/{shard_id}: offsets do not match the marker's {marker.stored} keys")
    out = {}
    for i, key in enumerate(marker.keys):
        u0, u1 = data["units_offsets"][i], data["units_offsets"][i + 1]
        d0, d1 = data["dedup_offsets"][i], data["dedup_offsets"][i + 1]
        out[key] = (data["units"][u0:u1], data["dedup"][d0:d1], data["runs"][d0:d1])
    return out
