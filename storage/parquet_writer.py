"""Parquet shard writer: each sample is a whole table, stored as ``<key>.parquet`` (used for manifests)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.writer import SampleRejected, ShardWriter

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ParquetTablesWriter(ShardWriter):
    """Writes ``{"table": pyarrow.Table}`` samples to ``shards/<shard_id>/<key>.parquet`` (zstd)."""

    store_kind = "parquet-tables"

    def _add(self, key: str, sample: Mapping[str, Any]) -> None:
        table = sample.get("table")
        if not isinstance(table, pa.Table):
            raise SampleRejected("sample needs a pyarrow Table under 'table'")
        if not _NAME.match(key):
            raise SampleRejected(f"table name {key!r} must be lowercase letters, digits and '_'")
        with self.version.store.open(f"{self.shard_key}/{key}.parquet", "wb") as stream:
            pq.write_table(table, stream, compression="zstd")

    def _flush(self) -> dict[str, Any]:
        return {}
