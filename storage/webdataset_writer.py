"""WebDataset shard writer: one POSIX tar per pipeline shard, readable by ``webdataset`` and HF ``datasets``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from storage.versions import StoreVersion
from storage.writer import SampleRejected, ShardWriter

# WebDataset groups tar members into samples by the basename up to the first dot: keys may not contain one.
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
_FIELD = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
#: Tar compression → file name.
COMPRESSIONS = {"none": "data.tar", "gz": "data.tar.gz", "xz": "data.tar.xz"}


class WebDatasetWriter(ShardWriter):
    """Writes samples to ``shards/<shard_id>/data.tar`` (member ``<key>.<field>`` per field).

    Field values are encoded by their extension with WebDataset's default encoders: ``.npy`` takes
    arrays, ``.json`` takes JSON values, ``.txt`` takes strings; ``bytes`` are stored as given.

    Args:
        version: The store version.
        shard_id: The pipeline shard id.
        input_fingerprint: Hash of the shard's inputs.
        model_fingerprint: Hash of the models behind the samples.
        compression: ``none`` (``data.tar``), ``gz`` (``data.tar.gz``, level 9, header mtime 0) or ``xz``
            (``data.tar.xz``, preset 9): every tar member costs a 512-byte header and pads to 512 bytes, which
            compression removes; xz also models repeats across a whole shard. ``webdataset``, HF ``datasets``
            and ``tarfile`` read all three as they read a tar.
        sidecar: A JSON document written beside the tar as ``meta.json`` (e.g. the fingerprints behind it).
    """

    store_kind = "webdataset"

    def __init__(
        self,
        version: StoreVersion,
        shard_id: str,
        *,
        input_fingerprint: str,
        model_fingerprint: str | None = None,
        compression: str = "none",
        sidecar: Mapping[str, Any] | None = None,
    ) -> None:
        import gzip
        import lzma

        import webdataset

        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
        super().__init__(version, shard_id, input_fingerprint=input_fingerprint, model_fingerprint=model_fingerprint)
        self.tar_name = COMPRESSIONS[compression]
        self.sidecar = dict(sidecar) if sidecar is not None else None
        self._stream = version.store.open(f"{self.shard_key}/{self.tar_name}", "wb")
        self._packer: Any = None
        if compression == "gz":
            self._packer = gzip.GzipFile(fileobj=self._stream, mode="wb", compresslevel=9, mtime=0)
        elif compression == "xz":
            self._packer = lzma.LZMAFile(self._stream, mode="wb", preset=9)  # noqa: SIM115 (closed in _close_streams)
        self._tar = webdataset.TarWriter(self._packer or self._stream, mtime=0.0)  # same samples, same bytes

    def _add(self, key: str, sample: Mapping[str, Any]) -> None:
        if not _KEY.match(key):
            raise SampleRejected(f"key {key!r} must be letters, digits, '_' or '-' (no dots or slashes)")
        if not sample:
            raise SampleRejected("sample has no fields")
        bad = [name for name in sample if not _FIELD.match(name)]
        if bad:
            raise SampleRejected(f"field names {bad} must be lowercase extensions such as 'units.npy'")
        try:
            self._tar.write({"__key__": key, **sample})
        except (TypeError, ValueError) as error:
            raise SampleRejected(f"cannot encode sample: {error}") from error

    def _close_streams(self) -> None:
        try:
            self._tar.close()
            if self._packer is not None:
                self._packer.close()
        finally:
            self._stream.close()

    def _flush(self) -> dict[str, Any]:
        self._close_streams()
        if self.sidecar is not None:
            self.version.store.write_bytes(
                f"{self.shard_key}/meta.json", (json.dumps(self.sidecar, indent=1) + "\n").encode()
            )
        return {"tar": self.tar_name}

    def _discard(self) -> None:
        self._close_streams()
