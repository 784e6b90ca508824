"""Comparing stores by content: each file's sha256, with the wall-clock timestamps of metadata aside.

Two runs of the same flows on the same inputs must write the same bytes whatever runs the tasks (threads,
a Dask cluster) and however often they were interrupted; only the times recorded in JSON metadata differ.
The crash, concurrency, corruption and Dask tests use it, and so does ``benchmarks/bench_dask_scaling.py``
(benchmarks run from the repository root, where ``tests`` is importable).
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

from storage.hashing import sha256_bytes
from storage.store import Store

#: JSON fields that record when something happened, not what was stored.
TIMESTAMP_FIELDS = frozenset({"committed_at", "created_at", "switched_at"})


def _without_timestamps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timestamps(v) for k, v in value.items() if k not in TIMESTAMP_FIELDS}
    if isinstance(value, list):
        return [_without_timestamps(v) for v in value]
    return value


def content_digests(store: Store, prefix: str = "") -> dict[str, str]:
    """The sha256 of every file below ``prefix``, by key relative to it; JSON without its timestamps."""
    digests = {}
    for info in store.walk_files(prefix):
        data = store.read_bytes(posixpath.join(prefix, info.relpath) if prefix else info.relpath)
        if info.relpath.endswith(".json"):
            data = json.dumps(_without_timestamps(json.loads(data)), sort_keys=True).encode()
        digests[info.relpath] = sha256_bytes(data)
    return digests


def snapshot(root: Path, prefix: str = "") -> dict[str, str]:
    """Every file below ``root/prefix`` of a local store by key relative to it, as its content digest."""
    return content_digests(Store(str(root)), prefix)


def differences(first: dict[str, str], second: dict[str, str]) -> list[str]:
    """Keys present in one digest map only, or with different content."""
    return sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
