"""Content hashes and fingerprints: the names of store versions and the checksums of shards."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

_BLOCK = 1 << 20
#: Hex characters of a sha256 kept in a fingerprint: 64 bits, short enough for paths, ample against clashes.
FINGERPRINT_CHARS = 16


def _blocks(stream: BinaryIO) -> Iterator[bytes]:
    """Everything left in a binary stream, 1 MiB at a time."""
    return iter(lambda: stream.read(_BLOCK), b"")


def sha256_stream(stream: BinaryIO) -> str:
    """Return the hex sha256 of everything left in a binary stream."""
    digest = hashlib.sha256()
    for block in _blocks(stream):
        digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of bytes in memory."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a local file, read in 1 MiB blocks."""
    with path.open("rb") as stream:
        return sha256_stream(stream)


def sha256_files(paths: Iterable[Path]) -> str:
    """Return the hex sha256 of local files' bytes one after another (a checkpoint made of several files)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as stream:
            for block in _blocks(stream):
                digest.update(block)
    return digest.hexdigest()


def canonical_json(value: Any) -> bytes:
    """Serialise a JSON value with sorted keys and no whitespace, so equal values hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fingerprint(value: Any) -> str:
    """Return a short stable hash of a JSON-serialisable value (a config, a listing, a member list)."""
    return hashlib.sha256(canonical_json(value)).hexdigest()[:FINGERPRINT_CHARS]


def fingerprint_rows(rows: Iterable[Iterable[object]]) -> str:
    """Return a short stable hash of rows of scalars without building one big JSON document."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(canonical_json([str(cell) for cell in row]))
        digest.update(b"\n")
    return digest.hexdigest()[:FINGERPRINT_CHARS]
