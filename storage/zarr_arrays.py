"""Zarr v3 array creation shared by the Zarr writers: sharded, compressed, written once in full."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

#: Default codec: Blosc(shuffle) + zstd, the best standard codec measured on unit grids (STACK-NOTES).
DEFAULT_CODEC = "blosc-zstd-shuffle"


def make_compressors(name: str) -> Any:
    """Return zarr compressors for a codec name (``blosc-zstd-shuffle``, ``blosc-zstd-bitshuffle``, ``none``)."""
    if name == "none":
        return None
    shuffles = {"blosc-zstd-shuffle": BloscShuffle.shuffle, "blosc-zstd-bitshuffle": BloscShuffle.bitshuffle}
    if name not in shuffles:
        raise ValueError(f"unknown codec {name!r}; choose one of {sorted([*shuffles, 'none'])}")
    return BloscCodec(cname="zstd", clevel=5, shuffle=shuffles[name])


def write_whole_array(group: zarr.Group, name: str, data: np.ndarray, *, chunk_rows: int, codec: str) -> None:
    """Create an array in a group and write it in one call, so every Zarr shard is written whole.

    Chunks hold ``chunk_rows`` rows; one Zarr shard holds the whole array (one shard = one file per
    array), which suits pipeline shards of a few thousand rows and keeps the file count low.
    """
    rows = max(1, min(chunk_rows, data.shape[0]))  # a chunk larger than the array only stores padding
    shard_rows = max(rows, -(-data.shape[0] // rows) * rows)
    array = group.create_array(
        name,
        shape=data.shape,
        dtype=data.dtype,
        chunks=(rows, *data.shape[1:]),
        shards=(shard_rows, *data.shape[1:]),
        compressors=make_compressors(codec),
        fill_value=0,
    )
    if data.shape[0]:
        array[...] = data
