"""Blob shard writer: each sample is one file's bytes, stored as ``shards/<shard_id>/<key>`` (codebooks)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from storage.writer import SampleRejected, ShardWriter

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class BlobWriter(ShardWriter):
    """Writes ``{"bytes": b"…"}`` samples as files named by their key."""

    store_kind = "files"

    def _add(self, key: str, sample: Mapping[str, Any]) -> None:
        data = sample.get("bytes")
        if not isinstance(data, bytes):
            raise SampleRejected("sample needs bytes under 'bytes'")
        if not _NAME.match(key):
            raise SampleRejected(f"file name {key!r} must be a plain name (letters, digits, '.', '_', '-')")
        self.version.store.write_bytes(f"{self.shard_key}/{key}", data)

    def _flush(self) -> dict[str, Any]:
        return {}
