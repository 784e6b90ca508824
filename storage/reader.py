"""Readers for committed shards: they verify checksums and refuse formats they do not know.

Nothing here reads a shard without a commit marker, so half-written data is never returned.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from storage.errors import CorruptShardError
from storage.hashing import fingerprint, sha256_file
from storage.kinds import REBUILT_BY
from storage.marker import CommitMarker
from storage.versions import StoreVersion


def verify_shard(version: StoreVersion, shard_id: str, *, checksums: bool = True) -> CommitMarker:
    """Check a committed shard against its marker.

    Args:
        version: The store version.
        shard_id: The shard to check.
        checksums: Also re-hash every file (sizes and presence are always checked).

    Returns:
        The shard's commit marker.

    Raises:
        NotCommittedError: If the shard has no marker.
        UnsupportedFormatError: If the marker's format_version is unknown.
        CorruptShardError: If a file is missing, extra, or differs in size or checksum.
    """
    marker = version.require_marker(shard_id)
    store = version.store
    prefix = version.shard_key(shard_id)
    then = _then(version)
    on_disk = {f.relpath: f.size for f in store.walk_files(prefix)}
    where = store.url_of(prefix)
    missing = sorted(set(marker.files) - set(on_disk))
    extra = sorted(set(on_disk) - set(marker.files))
    if missing or extra:
        raise CorruptShardError(f"{where}: files missing {missing} / unexpected {extra}; {then}")
    for relpath, expected in marker.files.items():
        if on_disk[relpath] != expected.bytes:
            raise CorruptShardError(
                f"{where}/{relpath}: {on_disk[relpath]} bytes, marker says {expected.bytes}; {then}"
            )
        if checksums and store.sha256(f"{prefix}/{relpath}") != expected.sha256:
            raise CorruptShardError(f"{where}/{relpath}: sha256 does not match its marker; {then}")
    return marker


def _then(version: StoreVersion) -> str:
    """What a user does about a damaged shard of this kind: flag it, then rerun the flow that rebuilds it."""
    flow = REBUILT_BY.get(version.kind, "the flow that wrote it")
    return f"run `im2sp verify` (it flags the shard), then rerun {flow} to rebuild it"


def verified_local_copy(version: StoreVersion, shard_id: str) -> Path:
    """A local folder holding a committed shard whose files match its marker (a model's files, to load).

    On a local store the shard's own files are re-hashed. On a remote store only presence and sizes are checked
    there; the download is cached under the marker's checksums (a shard rebuilt since is downloaded again), and
    the local files, the ones that will be loaded, are re-hashed: a damaged or partial cached copy is
    downloaded once more before the shard is called damaged.

    Raises:
        NotCommittedError: If the shard has no marker.
        CorruptShardError: If a file is missing or differs from its marker.
    """
    store = version.store
    key = version.shard_key(shard_id)
    if store.is_local:
        verify_shard(version, shard_id)
        return store.local_copy(key)
    marker = verify_shard(version, shard_id, checksums=False)
    content = fingerprint({name: checksum.sha256 for name, checksum in marker.files.items()})
    for _ in range(2):
        folder = store.local_copy(key, content)
        wrong = _local_mismatch(folder, marker)
        if wrong is None:
            return folder
        shutil.rmtree(folder, ignore_errors=True)
    raise CorruptShardError(f"{store.url_of(key)}/{wrong}: sha256 does not match its marker; {_then(version)}")


def _local_mismatch(folder: Path, marker: CommitMarker) -> str | None:
    """The first file of a local copy that is missing or differs from the marker, or None."""
    for relpath, expected in marker.files.items():
        path = folder / relpath
        if not path.is_file() or path.stat().st_size != expected.bytes or sha256_file(path) != expected.sha256:
            return relpath
    return None


def _open_group(version: StoreVersion, shard_id: str, verify: bool) -> tuple[CommitMarker, zarr.Group]:
    from storage.ans_codec import register

    register()  # arrays written with codec "ans" need it, even when im2sp runs from a source checkout
    marker = verify_shard(version, shard_id) if verify else version.require_marker(shard_id)
    store = version.store.zarr_store(version.shard_key(shard_id), read_only=True)
    return marker, zarr.open_group(store, mode="r", zarr_format=3)


def _array(group: zarr.Group, name: str) -> zarr.Array[Any]:
    array = group[name]
    if not isinstance(array, zarr.Array):
        raise CorruptShardError(f"{group.store}: {name!r} is not an array")
    return array


def read_units(version: StoreVersion, shard_id: str, *, verify: bool = True) -> tuple[list[str], np.ndarray]:
    """Return the keys and the ``(n, *item_shape)`` units of a committed Zarr units shard."""
    marker, group = _open_group(version, shard_id, verify)
    units = np.asarray(_array(group, "units")[...])
    if units.shape[0] != marker.stored:
        raise CorruptShardError(f"{version.url}/{shard_id}: {units.shape[0]} rows, marker lists {marker.stored}")
    return list(marker.keys), units


def iter_ragged(version: StoreVersion, shard_id: str, *, verify: bool = True) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(key, values)`` of every item of a committed ragged Zarr shard, in storage order."""
    marker, group = _open_group(version, shard_id, verify)
    offsets = np.asarray(_array(group, "offsets")[...])
    if len(offsets) != marker.stored + 1:
        raise CorruptShardError(f"{version.url}/{shard_id}: {len(offsets)} offsets for {marker.stored} items")
    values = _array(group, "values")
    for index, key in enumerate(marker.keys):
        yield key, np.asarray(values[int(offsets[index]) : int(offsets[index + 1])])


def iter_webdataset(
    version: StoreVersion, shard_id: str, *, verify: bool = True
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {field: raw bytes})`` of every sample of a committed WebDataset shard."""
    marker = verify_shard(version, shard_id) if verify else version.require_marker(shard_id)
    tar_key = f"{version.shard_key(shard_id)}/{marker.extra.get('tar', 'data.tar')}"
    data = version.store.read_bytes(tar_key)
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            stream = archive.extractfile(member)
            if stream is None:
                continue
            key, _, field = member.name.partition(".")
            samples.setdefault(key, {})[field] = stream.read()
    if list(samples) != list(marker.keys):
        raise CorruptShardError(f"{version.url}/{shard_id}: tar keys do not match the marker's keys")
    yield from samples.items()


def shard_summary(marker: CommitMarker) -> dict[str, Any]:
    """Return the counts of a marker as a small dict (for reports and task results)."""
    return {
        "shard": marker.shard_id,
        "input": marker.input_count,
        "stored": marker.stored,
        "rejected": len(marker.rejected),
        "bytes": marker.stored_bytes,
    }
