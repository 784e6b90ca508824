"""Commit markers: the file written last for every shard; no marker means the shard does not exist."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from storage.errors import CorruptShardError
from storage.format import FORMAT_VERSION, check_format_version, code_version
from storage.packed_keys import pack_keys, unpack_keys


@dataclass(frozen=True)
class Rejection:
    """One item that was not stored, and why."""

    key: str
    reason: str


@dataclass(frozen=True)
class FileChecksum:
    """Size and sha256 of one file a shard wrote."""

    bytes: int
    sha256: str


@dataclass(frozen=True)
class CommitMarker:
    """Everything a reader needs to trust a shard: counts that add up, checksums, provenance.

    Attributes:
        store_kind: Kind of store (``zarr-units``, ``zarr-ragged``, ``speech-units``, ``webdataset``,
            ``parquet-tables``, ``files``).
        shard_id: The pipeline shard this marker commits.
        keys: Stored item keys, in storage order (row i of the shard's arrays is ``keys[i]``); on disk a
            plain list or, when shorter, packed (:func:`pack_keys`).
        rejected: Items not stored, with reasons.
        files: Checksums of every file below the shard folder, by path relative to it.
        input_fingerprint: Hash of the shard's inputs (member ids and content hashes).
        model_fingerprint: Hash of the model that produced the data, if any.
        extra: Writer-specific facts (shapes, dtypes, codecs).
    """

    store_kind: str
    shard_id: str
    keys: tuple[str, ...]
    rejected: tuple[Rejection, ...]
    files: dict[str, FileChecksum]
    input_fingerprint: str
    model_fingerprint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    code_version: str = field(default_factory=code_version)
    format_version: int = FORMAT_VERSION
    committed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def stored(self) -> int:
        """Number of items stored."""
        return len(self.keys)

    @property
    def input_count(self) -> int:
        """Number of items the shard was given: stored + rejected."""
        return len(self.keys) + len(self.rejected)

    @property
    def stored_bytes(self) -> int:
        """Bytes of every file the shard wrote."""
        return sum(f.bytes for f in self.files.values())

    def to_json(self) -> dict[str, Any]:
        """Return the marker as the JSON document stored on disk."""
        document = asdict(self)
        document["keys"] = pack_keys(self.keys)
        document["counts"] = {
            "input": self.input_count,
            "stored": self.stored,
            "rejected": len(self.rejected),
        }
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any], where: str) -> CommitMarker:
        """Parse a marker read from disk, refusing unknown formats and counts that do not add up.

        Args:
            document: The parsed JSON.
            where: The file it came from, for messages.

        Raises:
            UnsupportedFormatError: If its format_version is unknown.
            CorruptShardError: If fields are missing or its counts do not add up.
        """
        check_format_version(document.get("format_version"), where)
        try:
            marker = cls(
                store_kind=document["store_kind"],
                shard_id=document["shard_id"],
                keys=unpack_keys(document["keys"], where),
                rejected=tuple(Rejection(**r) for r in document["rejected"]),
                files={k: FileChecksum(**v) for k, v in document["files"].items()},
                input_fingerprint=document["input_fingerprint"],
                model_fingerprint=document.get("model_fingerprint"),
                extra=dict(document.get("extra", {})),
                code_version=document["code_version"],
                format_version=document["format_version"],
                committed_at=document["committed_at"],
            )
            counts = document["counts"]
        except (KeyError, TypeError) as error:
            raise CorruptShardError(f"{where}: commit marker is malformed ({error!r})") from error
        if counts != {"input": marker.input_count, "stored": marker.stored, "rejected": len(marker.rejected)}:
            raise CorruptShardError(f"{where}: counts {counts} do not match the keys and rejections listed")
        return marker
