"""WebDataset shard writer: one POSIX tar per pipeline shard, readable by ``webdataset`` and HF ``datasets``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from storage.versions import StoreVersion
from storage.writer import SampleRejected, ShardWriter

# WebDataset groups tar members into samples by the basename up to the first dot: keys may not contain one.
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
_FIELD = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


class WebDatasetWriter(ShardWriter):
    """Writes samples to ``shards/<shard_id>/data.tar`` (member ``<key>.<field>`` per field).

    Field values are encoded by their extension with WebDataset's default encoders: ``.npy`` takes
    arrays, ``.json`` takes JSON values, ``.txt`` takes strings; ``bytes`` are stored as given.

    Args:
        version: The store version.
        shard_id: The pipeline shard id.
        input_fingerprint: Hash of the shard's inputs.
        model_fingerprint: Hash of the models behind the samples.
    """

    store_kind = "webdataset"
    tar_name = "data.tar"

    def __init__(
        self,
        version: StoreVersion,
        shard_id: str,
        *,
        input_fingerprint: str,
        model_fingerprint: str | None = None,
    ) -> None:
        import webdataset

        super().__init__(version, shard_id, input_fingerprint=input_fingerprint, model_fingerprint=model_fingerprint)
        self._stream = version.store.open(f"{self.shard_key}/{self.tar_name}", "wb")
        self._tar = webdataset.TarWriter(self._stream, mtime=0.0)  # same samples, same bytes

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

    def _flush(self) -> dict[str, Any]:
        self._tar.close()
        self._stream.close()
        return {"tar": self.tar_name}

    def _discard(self) -> None:
        try:
            self._tar.close()
        finally:
            self._stream.close()
