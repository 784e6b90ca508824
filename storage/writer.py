"""The writer contract every store kind follows.

A writer owns exactly one shard of one store version::

    with ZarrUnitsWriter(version, "train-00000", input_fingerprint=fp) as writer:
        writer.write("391895", {"units": grid})
        writer.reject("167126", "truncated JPEG")
    # leaving the block without an exception commits: data flushed, checksums taken, marker written last

Leaving the block with an exception aborts: the partial data is removed and no marker is written, so a
rerun rebuilds the shard and readers never see it. Opening a writer removes whatever an earlier,
uncommitted (or stale) attempt left behind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

from storage.errors import SampleRejected as SampleRejected  # re-exported: the writers raise it
from storage.marker import CommitMarker, FileChecksum, Rejection
from storage.versions import StoreVersion


class ShardWriter(ABC):
    """Base class of every shard writer: bookkeeping, rejection, commit and abort.

    Args:
        version: The store version the shard belongs to.
        shard_id: The pipeline shard id.
        input_fingerprint: Hash of the shard's inputs, recorded in the marker.
        model_fingerprint: Hash of the model that produced the samples, if any.
    """

    store_kind: ClassVar[str]

    def __init__(
        self,
        version: StoreVersion,
        shard_id: str,
        *,
        input_fingerprint: str,
        model_fingerprint: str | None = None,
    ) -> None:
        self.version = version
        self.shard_id = shard_id
        self.input_fingerprint = input_fingerprint
        self.model_fingerprint = model_fingerprint
        self.shard_key = version.shard_key(shard_id)
        self._keys: list[str] = []
        self._seen: set[str] = set()
        self._rejected: list[Rejection] = []
        self._closed = False
        # Marker first, then data: a crash in between leaves an uncommitted shard, never a marker
        # that vouches for missing files.
        version.store.remove(version.marker_key(shard_id))
        version.store.remove(version.damaged_key(shard_id))
        version.store.remove(self.shard_key)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            if not self._closed:
                self.close()
        else:
            self.abort()

    @property
    def stored(self) -> int:
        """Items stored so far."""
        return len(self._keys)

    def write(self, key: str, sample: Mapping[str, Any]) -> bool:
        """Add one sample; a sample the store cannot hold is recorded as rejected, not raised.

        Args:
            key: The item's stable id, unique within the shard.
            sample: Store-kind specific fields.

        Returns:
            True when stored, False when rejected.
        """
        self._check_open()
        if key in self._seen:
            self._rejected.append(Rejection(key, "duplicate key in shard"))
            return False
        try:
            self._add(key, sample)
        except SampleRejected as verdict:
            self._seen.add(key)
            self._rejected.append(Rejection(key, str(verdict)))
            return False
        self._seen.add(key)
        self._keys.append(key)
        return True

    def reject(self, key: str, reason: str) -> None:
        """Record an item the caller could not turn into a sample (unreadable input, …)."""
        self._check_open()
        self._seen.add(key)
        self._rejected.append(Rejection(key, reason))

    def close(self) -> CommitMarker:
        """Flush data, checksum every file of the shard and write the commit marker last."""
        self._check_open()
        extra = self._flush()
        store = self.version.store
        files = {
            info.relpath: FileChecksum(bytes=info.size, sha256=store.sha256(f"{self.shard_key}/{info.relpath}"))
            for info in store.walk_files(self.shard_key)
        }
        marker = CommitMarker(
            store_kind=self.store_kind,
            shard_id=self.shard_id,
            keys=tuple(self._keys),
            rejected=tuple(self._rejected),
            files=files,
            input_fingerprint=self.input_fingerprint,
            model_fingerprint=self.model_fingerprint,
            extra=extra,
        )
        store.write_json(self.version.marker_key(self.shard_id), marker.to_json())
        self._closed = True
        return marker

    def abort(self) -> None:
        """Drop everything written so far; the shard stays uncommitted."""
        self._closed = True
        self._discard()
        self.version.store.remove(self.shard_key)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"writer for shard {self.shard_id!r} is already closed")

    def _discard(self) -> None:  # noqa: B027 - optional hook
        """Release buffers or open files on abort (subclasses with state override this)."""

    @abstractmethod
    def _add(self, key: str, sample: Mapping[str, Any]) -> None:
        """Buffer or write one sample; raise SampleRejected for a sample the store cannot hold."""

    @abstractmethod
    def _flush(self) -> dict[str, Any]:
        """Write everything buffered; return writer-specific facts for the marker's ``extra``."""
