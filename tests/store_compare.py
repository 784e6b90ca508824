"""Comparing two stores file by file, byte for byte, with the wall-clock timestamps of metadata aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Metadata fields that record when something happened, not what was stored.
TIMESTAMPS = frozenset({"committed_at", "created_at", "switched_at"})


def _without_timestamps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timestamps(v) for k, v in value.items() if k not in TIMESTAMPS}
    if isinstance(value, list):
        return [_without_timestamps(v) for v in value]
    return value


def snapshot(root: Path, *prefixes: str) -> dict[str, bytes]:
    """Every file below ``root/prefix`` as bytes, by store key; JSON files with their timestamps removed."""
    files: dict[str, bytes] = {}
    for prefix in prefixes or ("",):
        base = root / prefix
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if path.suffix == ".json":
                data = json.dumps(_without_timestamps(json.loads(data)), sort_keys=True).encode()
            files[path.relative_to(root).as_posix()] = data
    return files


def differences(first: dict[str, bytes], second: dict[str, bytes]) -> list[str]:
    """Store keys present in one snapshot only, or with different content."""
    return sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
