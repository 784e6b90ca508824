"""Zarr v3 array creation shared by the Zarr writers: sharded, compressed, written once in full."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import zarr
import zarr.storage
from zarr.codecs import BloscCodec, BloscShuffle

# Zarr metadata as compact JSON (zarr indents it by 2 by default): a sharded array's zarr.json shrinks from
# ~900 to ~600 bytes, which is a fifth of a small speech-units shard. Set once, process-wide, when the first
# writer is imported (a per-write `zarr.config.set` context would race between writer threads).
zarr.config.set({"json_indent": None})

#: Default codec: Blosc(shuffle) + zstd, the best standard codec measured on unit grids (STACK-NOTES).
DEFAULT_CODEC = "blosc-zstd-shuffle"
#: Entropy coding of integer units (storage/ans_codec.py): near the entropy, but needs im2sp to read.
ANS = "ans"
#: Per shard, the smallest of these (each shard's zarr.json names the codec it got).
AUTO = "auto"
AUTO_CANDIDATES = ("blosc-zstd-shuffle", "blosc-zstd-bitshuffle", ANS)


def make_compressors(name: str) -> Any:
    """Return zarr compressors for a codec name (``blosc-zstd-shuffle``, ``blosc-zstd-bitshuffle``, ``none``)."""
    if name in ("none", ANS):
        return None
    shuffles = {"blosc-zstd-shuffle": BloscShuffle.shuffle, "blosc-zstd-bitshuffle": BloscShuffle.bitshuffle}
    if name not in shuffles:
        raise ValueError(f"unknown codec {name!r}; choose one of {sorted([*shuffles, 'none'])}")
    return BloscCodec(cname="zstd", clevel=5, shuffle=shuffles[name])


def write_whole_array(
    group: zarr.Group, name: str, data: np.ndarray, *, chunk_rows: int, codec: str, sharded: bool = True
) -> None:
    """Create an array in a group and write it in one call, so every Zarr shard is written whole.

    Chunks hold ``chunk_rows`` rows; one Zarr shard holds the whole array (one shard = one file per
    array), which suits pipeline shards of a few thousand rows and keeps the file count low. With
    ``sharded=False`` the array is one plain chunk (still one file) and its metadata carries no sharding
    codec: for small arrays, where that metadata would outweigh the data (speech units).
    """
    rows = max(1, min(chunk_rows, data.shape[0]))  # a chunk larger than the array only stores padding
    shard_rows = max(rows, -(-data.shape[0] // rows) * rows)
    layout: dict[str, Any] = {"chunks": (rows, *data.shape[1:]), "shards": (shard_rows, *data.shape[1:])}
    if not sharded:
        layout = {"chunks": (max(1, data.shape[0]), *data.shape[1:])}
    coding: dict[str, Any] = {"compressors": make_compressors(codec)} if codec != ANS else {}
    if codec == ANS:
        from storage.ans_codec import AnsCodec, register

        register()
        coding = {"serializer": AnsCodec(), "compressors": None}
    array = group.create_array(
        name,
        shape=data.shape,
        dtype=data.dtype,
        fill_value=0,
        **layout,
        **coding,
    )
    if data.shape[0]:
        array[...] = data


def smallest_codec(
    data: np.ndarray,
    candidates: tuple[str, ...],
    rows_for: Callable[[str, np.ndarray], int],
    *,
    sharded: bool = True,
) -> str:
    """Return the candidate codec that stores ``data`` in the fewest bytes (tried in memory)."""
    sizes = {}
    for codec in candidates:
        written: dict[str, Any] = {}
        group = zarr.open_group(zarr.storage.MemoryStore(written), mode="w", zarr_format=3)
        write_whole_array(group, "a", data, chunk_rows=rows_for(codec, data), codec=codec, sharded=sharded)
        sizes[codec] = sum(len(value.to_bytes()) for value in written.values())
    return min(candidates, key=lambda codec: sizes[codec])
