"""The storage report contract: one entry per (dataset, modality, representation), sizes measured on disk.

``im2sp report storage --json`` prints ``{"format_version": 2, "entries": [...], "stale_versions": [...],
"reclaimable_bytes": N}``. Raw bits are counted at
the model inputs: images as 256×256 RGB bytes, speech as 16 kHz 16-bit PCM. This module covers the source
files (from the current manifests), the image units and the speech units; later stores add theirs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow.compute as pc

from storage.errors import Im2SpError
from storage.format import FORMAT_VERSION
from storage.kinds import (
    IMAGE_CODEBOOK,
    IMAGE_UNITS,
    MANIFESTS,
    SHARED,
    SPEECH_CODEBOOK,
    SPEECH_FEATURES,
    SPEECH_UNITS,
)
from storage.manifests import read_table
from storage.speech_units_writer import stored_frames
from storage.store import Store
from storage.versions import current_version, stale_versions

IMAGE_RAW_BITS = 256 * 256 * 3 * 8
SPEECH_RAW_BITS_PER_SECOND = 16_000 * 16
TOKENS_PER_IMAGE = 32 * 32


@dataclass(frozen=True)
class StorageEntry:
    """One row of the storage report."""

    dataset: str
    modality: str
    representation: str
    items: int
    source_bytes: int
    raw_bits: int
    unit_bits: int | None
    stored_bytes: int
    path: str
    version: str | None = None
    codebook: str | None = None

    @property
    def ratio_to_raw(self) -> float | None:
        """Stored bits as a fraction of the raw bits (None when there are no raw bits)."""
        return self.stored_bytes * 8 / self.raw_bits if self.raw_bits else None


def source_entries(store: Store, dataset: str, roots: dict[str, str]) -> list[StorageEntry]:
    """Return the source-file entries of a dataset from its current manifests (empty when none).

    Args:
        store: The store root.
        dataset: Dataset name.
        roots: Display path per modality (``image``, ``speech``) for the ``path`` field.
    """
    version = current_version(store, dataset, MANIFESTS)
    if version is None:
        return []
    images = read_table(version, "images").filter(pc.equal(pc.field("status"), "ok"))
    speech = read_table(version, "utterances").filter(pc.equal(pc.field("status"), "ok"))
    image_bytes = int(pc.sum(images["bytes"]).as_py() or 0)
    speech_bytes = int(pc.sum(speech["bytes"]).as_py() or 0)
    seconds = float(pc.sum(speech["duration"]).as_py() or 0.0)
    return [
        StorageEntry(
            dataset,
            "image",
            "source",
            images.num_rows,
            image_bytes,
            images.num_rows * IMAGE_RAW_BITS,
            None,
            image_bytes,
            roots.get("image", ""),
            version.version,
        ),
        StorageEntry(
            dataset,
            "speech",
            "source",
            speech.num_rows,
            speech_bytes,
            round(seconds * SPEECH_RAW_BITS_PER_SECOND),
            None,
            speech_bytes,
            roots.get("speech", ""),
            version.version,
        ),
    ]


def image_unit_entries(store: Store, dataset: str) -> list[StorageEntry]:
    """Return the entry of a dataset's current image-unit store version (empty when none is published).

    ``unit_bits`` is the paper's fixed packing (1,024 tokens × ceil(log2 K) bits per image); ``stored_bytes``
    is every file of the version on disk, metadata and markers included.
    """
    version = current_version(store, dataset, IMAGE_UNITS)
    if version is None:
        return []
    produced_by = version.info()["produced_by"]
    codebook_size = int(produced_by["codebook_size"])
    keys = [key for marker in version.committed().values() for key in marker.keys]
    sources = current_version(store, dataset, MANIFESTS)
    sizes = read_table(sources, "images").select(["id", "bytes"]).to_pylist() if sources is not None else []
    by_id = {row["id"]: row["bytes"] or 0 for row in sizes}
    return [
        StorageEntry(
            dataset,
            "image",
            "units",
            len(keys),
            sum(by_id.get(key, 0) for key in keys),
            len(keys) * IMAGE_RAW_BITS,
            len(keys) * TOKENS_PER_IMAGE * max(1, math.ceil(math.log2(codebook_size))),
            store.disk_usage(version.prefix),
            version.url,
            version.version,
            str(produced_by.get("fingerprint") or version.version),
        )
    ]


def speech_unit_entries(store: Store, dataset: str) -> list[StorageEntry]:
    """Return the entry of a dataset's current speech-unit version (empty when none is published).

    ``raw_bits`` is the stored utterances' 16 kHz 16-bit PCM (seconds × 256,000); ``unit_bits`` is their
    full-rate frames × ceil(log2 K); ``stored_bytes`` is every file of the version (runs, offsets, markers, metadata).
    """
    version = current_version(store, dataset, SPEECH_UNITS)
    if version is None:
        return []
    produced_by = version.info()["produced_by"]
    codebook_size = int(produced_by["codebook_size"])
    markers = version.committed().values()
    keys = [key for marker in markers for key in marker.keys]
    frames = sum(stored_frames(marker.extra) for marker in markers)
    sources = current_version(store, dataset, MANIFESTS)
    rows = read_table(sources, "utterances").select(["id", "bytes", "duration"]).to_pylist() if sources else []
    by_id = {row["id"]: row for row in rows}
    seconds = sum(float(by_id[key]["duration"] or 0.0) for key in keys if key in by_id)
    return [
        StorageEntry(
            dataset,
            "speech",
            "units",
            len(keys),
            sum(int(by_id[k]["bytes"] or 0) for k in keys if k in by_id),
            round(seconds * SPEECH_RAW_BITS_PER_SECOND),
            frames * max(1, math.ceil(math.log2(codebook_size))),
            store.disk_usage(version.prefix),
            version.url,
            version.version,
            str(produced_by["codebook"]),
        )
    ]


@dataclass(frozen=True)
class StaleVersion:
    """A store version that no ``current`` pointer names: an earlier build, or one not finished yet."""

    dataset: str
    kind: str
    version: str
    created_at: str
    stored_bytes: int


#: Store kinds checked for stale versions: per dataset, and in ``_shared``.
DATASET_KINDS = (MANIFESTS, IMAGE_UNITS, SPEECH_FEATURES, SPEECH_UNITS)
SHARED_KINDS = (IMAGE_CODEBOOK, SPEECH_CODEBOOK)


def stale_entries(store: Store, datasets: list[str]) -> list[StaleVersion]:
    """Every version of the datasets' stores (and of the shared codebooks) that is not current, newest first."""
    out = []
    for dataset, kinds in [*((d, DATASET_KINDS) for d in datasets), (SHARED, SHARED_KINDS)]:
        for kind in kinds:
            for version in stale_versions(store, dataset, kind):
                try:
                    created = str(version.info().get("created_at", ""))
                except (Im2SpError, OSError, ValueError):
                    created = ""
                out.append(StaleVersion(dataset, kind, version.version, created, store.disk_usage(version.prefix)))
    return out


def report_json(entries: list[StorageEntry], stale: list[StaleVersion] | None = None) -> dict[str, Any]:
    """Return the report document of the storage report contract."""
    stale = stale or []
    return {
        "format_version": FORMAT_VERSION,
        "entries": [asdict(e) for e in entries],
        "stale_versions": [asdict(v) for v in stale],
        "reclaimable_bytes": sum(v.stored_bytes for v in stale),
    }
