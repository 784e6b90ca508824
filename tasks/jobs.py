"""Small, serialisable references passed between a flow and its per-shard tasks."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.lineage import InputShard
from storage.locks import shard_lock
from storage.versions import StoreVersion


@dataclass(frozen=True)
class ShardJob:
    """One planned shard: its items (id, path relative to the dataset root, sha256) and input fingerprint.

    ``inputs``: the shards of other stores it reads, each with the fingerprint its marker must carry
    (``storage/lineage.py``); checked before the shard is built and again before it commits.
    """

    dataset: str
    shard_id: str
    input_fingerprint: str
    items: tuple[tuple[str, str, str], ...]
    inputs: tuple[InputShard, ...] = ()


@dataclass(frozen=True)
class ShardOutcome:
    """What a shard task did: a small reference for the flow."""

    dataset: str
    shard_id: str
    built: bool
    stored: int
    rejected: int
    stored_bytes: int

    @classmethod
    def of(cls, version: StoreVersion, job: ShardJob, *, built: bool) -> ShardOutcome:
        """The outcome recorded by a shard's commit marker."""
        marker = version.require_marker(job.shard_id)
        return cls(job.dataset, job.shard_id, built, marker.stored, len(marker.rejected), marker.stored_bytes)


@contextlib.contextmanager
def claimed(version: StoreVersion, job: ShardJob) -> Iterator[ShardOutcome | None]:
    """Hold the shard's lock while it is checked and built; yield the skipped outcome if it is committed.

    A second run reaching a shard that the first is building waits here, then skips it (``storage/locks.py``).
    """
    with shard_lock(version.store, version.lock_key(job.shard_id)):
        yield already_committed(version, job)


def already_committed(version: StoreVersion, job: ShardJob) -> ShardOutcome | None:
    """The skipped outcome when the shard is committed for exactly these inputs, else None (build it)."""
    if version.needs_build(job.shard_id, job.input_fingerprint):
        return None
    return ShardOutcome.of(version, job, built=False)


def read_verified(root: Path, item: tuple[str, str, str]) -> bytes | str:
    """Read a job item's file and check it against the manifest's sha256; a string is the reject reason."""
    _, relpath, sha256 = item
    try:
        data = (root / relpath).read_bytes()
    except OSError as error:
        return f"missing file: {relpath} ({error.strerror})"
    if hashlib.sha256(data).hexdigest() != sha256:
        return f"changed since manifest: {relpath}; rerun build-manifests"
    return data
