"""The storage report contract: one entry per (dataset, modality, representation), sizes measured on disk.

``im2sp report storage --json`` prints ``{"format_version": 1, "entries": [...]}``. Raw bits are counted at
the model inputs: images as 256×256 RGB bytes, speech as 16 kHz 16-bit PCM. This module covers the source
files (from the current manifests); later stores add their own representations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pyarrow.compute as pc

from storage.format import FORMAT_VERSION
from storage.manifests import KIND as MANIFESTS
from storage.manifests import read_table
from storage.store import Store
from storage.versions import current_version

IMAGE_RAW_BITS = 256 * 256 * 3 * 8
SPEECH_RAW_BITS_PER_SECOND = 16_000 * 16


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


def report_json(entries: list[StorageEntry]) -> dict[str, Any]:
    """Return the report document of the storage report contract."""
    return {"format_version": FORMAT_VERSION, "entries": [asdict(e) for e in entries]}
