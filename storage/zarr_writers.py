"""Zarr v3 shard writers: fixed-shape units (``N × 32 × 32``) and ragged sequences (``values`` + ``offsets``).

Each pipeline shard is its own Zarr group below ``shards/<shard_id>/``, so concurrent tasks never share a
Zarr shard or metadata file. Row ``i`` of a shard's arrays is the item ``marker.keys[i]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from storage.versions import StoreVersion
from storage.writer import SampleRejected, ShardWriter
from storage.zarr_arrays import ANS, AUTO, AUTO_CANDIDATES, DEFAULT_CODEC, smallest_codec, write_whole_array


class ZarrUnitsWriter(ShardWriter):
    """Writes fixed-shape integer grids (image units) as one ``units`` array of shape ``(n, *item_shape)``.

    Args:
        version: The store version.
        shard_id: The pipeline shard id.
        input_fingerprint: Hash of the shard's inputs.
        model_fingerprint: Hash of the tokenizer.
        item_shape: Shape of one sample (default ``(32, 32)``).
        dtype: Storage dtype (default ``uint16``: 8192 codes need 13 bits).
        chunk_rows: Items per Zarr chunk.
        codec: Codec name (see ``storage.zarr_arrays.make_compressors``).
    """

    store_kind = "zarr-units"

    def __init__(
        self,
        version: StoreVersion,
        shard_id: str,
        *,
        input_fingerprint: str,
        model_fingerprint: str | None = None,
        item_shape: tuple[int, ...] = (32, 32),
        dtype: str = "uint16",
        chunk_rows: int = 256,
        codec: str = DEFAULT_CODEC,
    ) -> None:
        super().__init__(version, shard_id, input_fingerprint=input_fingerprint, model_fingerprint=model_fingerprint)
        self.item_shape = tuple(item_shape)
        self.dtype = np.dtype(dtype)
        self.chunk_rows = chunk_rows
        self.codec = codec
        self._rows: list[np.ndarray] = []

    def _add(self, key: str, sample: Mapping[str, Any]) -> None:
        units = np.asarray(sample["units"])
        if units.shape != self.item_shape:
            raise SampleRejected(f"units shape {units.shape} is not {self.item_shape}")
        if units.dtype.kind not in "iu":
            raise SampleRejected(f"units dtype {units.dtype} is not an integer type")
        info = np.iinfo(self.dtype)
        if units.size and (units.min() < info.min or units.max() > info.max):
            raise SampleRejected(f"unit values outside {self.dtype} range")
        self._rows.append(units.astype(self.dtype, copy=False))

    def _flush(self) -> dict[str, Any]:
        data = np.stack(self._rows) if self._rows else np.zeros((0, *self.item_shape), self.dtype)
        group = zarr.open_group(self.version.store.zarr_store(self.shard_key), mode="w", zarr_format=3)
        codec = smallest_codec(data, AUTO_CANDIDATES, self._rows_for) if self.codec == AUTO else self.codec
        write_whole_array(group, "units", data, chunk_rows=self._rows_for(codec, data), codec=codec)
        self._rows = []
        return {"shape": list(data.shape), "dtype": str(self.dtype), "codec": codec}

    def _rows_for(self, codec: str, data: np.ndarray) -> int:
        # One entropy model per chunk: ANS chunks span the whole shard so the histogram is paid once.
        return max(1, len(data)) if codec == ANS else self.chunk_rows

    def _discard(self) -> None:
        self._rows = []


class ZarrRaggedWriter(ShardWriter):
    """Writes variable-length sequences as a flat ``values`` array plus ``offsets`` (n + 1 entries).

    Item ``i`` is ``values[offsets[i]:offsets[i + 1]]``. Used for speech features (``T × D`` float16).

    Args:
        version: The store version.
        shard_id: The pipeline shard id.
        input_fingerprint: Hash of the shard's inputs.
        model_fingerprint: Hash of the model.
        row_shape: Shape of one step (``(768,)`` for features, ``()`` for units).
        dtype: Storage dtype.
        chunk_rows: Steps per Zarr chunk.
        codec: Codec name.
        extra: Caller facts for the marker's ``extra`` (read at commit, so it may be filled while writing).
    """

    store_kind = "zarr-ragged"

    def __init__(
        self,
        version: StoreVersion,
        shard_id: str,
        *,
        input_fingerprint: str,
        model_fingerprint: str | None = None,
        row_shape: tuple[int, ...] = (),
        dtype: str = "float16",
        chunk_rows: int = 4096,
        codec: str = DEFAULT_CODEC,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(version, shard_id, input_fingerprint=input_fingerprint, model_fingerprint=model_fingerprint)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.chunk_rows = chunk_rows
        self.codec = codec
        self._parts: list[np.ndarray] = []
        self._extra = extra if extra is not None else {}

    def _add(self, key: str, sample: Mapping[str, Any]) -> None:
        values = np.asarray(sample["values"])
        if values.ndim != 1 + len(self.row_shape) or values.shape[1:] != self.row_shape:
            raise SampleRejected(f"values shape {values.shape} is not (T, {', '.join(map(str, self.row_shape))})")
        stored = values.astype(self.dtype, copy=False)
        if stored.dtype.kind == "f" and not np.isfinite(stored).all():  # after the cast: float16 overflows to Inf
            raise SampleRejected(f"values contain NaN or Inf (as {self.dtype})")
        self._parts.append(stored)

    def _flush(self) -> dict[str, Any]:
        lengths = np.array([len(p) for p in self._parts], dtype=np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate(self._parts) if self._parts else np.zeros((0, *self.row_shape), dtype=self.dtype)
        group = zarr.open_group(self.version.store.zarr_store(self.shard_key), mode="w", zarr_format=3)
        write_whole_array(group, "values", values, chunk_rows=self.chunk_rows, codec=self.codec)
        write_whole_array(group, "offsets", offsets, chunk_rows=max(1, len(offsets)), codec=self.codec)
        self._parts = []
        return {**self._extra, "values_shape": list(values.shape), "dtype": str(self.dtype), "codec": self.codec}

    def _discard(self) -> None:
        self._parts = []
