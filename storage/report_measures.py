"""How the storage report measures each representation: one function per store kind, sizes read on disk.

Each function reads the current (published) version of one kind and returns its report entries; the store kind
specs (``storage/kind_specs.py``) name the function that measures their kind, and ``storage/report.py`` calls
them in turn. A function raises (one of :data:`UNREADABLE`) when its store cannot be read; the caller lists
that store as unmeasured and goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc

from storage.errors import DamagedPointerError, Im2SpError
from storage.kinds import (
    IMAGE_UNITS,
    MANIFESTS,
    REBUILT_BY,
    SHARED,
    SPEECH_FEATURES,
    SPEECH_UNITS,
    TRAIN_RUNS,
    TRAINING_SHARDS,
    VOCODERS,
)
from storage.manifests import read_table
from storage.marker import CommitMarker
from storage.speech_units_writer import stored_frames
from storage.store import Store
from storage.versions import StoreVersion, current_pointer, current_version, list_versions

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


@dataclass(frozen=True)
class Unmeasured:
    """A store the report could not read: why, and the flow whose rerun rewrites what is damaged."""

    dataset: str
    kind: str
    problem: str
    rerun: str


#: What stops one store's measurement without stopping the report: damaged, missing or unparseable files
#: (``Im2SpError``: damaged markers and pointers, uncommitted shards, formats of newer code; ``OSError``: a
#: missing file; ``ValueError``: a table pyarrow cannot parse; ``KeyError``/``TypeError``: a ``version.json``
#: or marker that parses but lacks a field or has one of the wrong type).
UNREADABLE = (Im2SpError, OSError, ValueError, KeyError, TypeError)

#: Manifest rows by table, then item id, read once per report of a dataset.
SourceRows = dict[str, dict[str, dict[str, Any]]]


@dataclass
class Measuring:
    """What a kind's measure gets: where to look, and what the measures of one dataset share.

    Attributes:
        store: The store root.
        dataset: Dataset name, or ``_shared``.
        roots: Display path per modality (``image``, ``speech``) for the ``path`` of the ``source`` entries.
        memo: Each manifest table, read (and re-hashed) once for all entries of the dataset.
        problems: Where a measure that goes on past an unreadable part (one training run) lists it.
    """

    store: Store
    dataset: str
    roots: dict[str, str] = field(default_factory=dict)
    memo: SourceRows = field(default_factory=dict)
    problems: list[Unmeasured] = field(default_factory=list)


def as_unmeasured(dataset: str, kind: str, error: Exception) -> Unmeasured:
    """The unmeasured line of a store that raised ``error``, naming the flow whose rerun repairs it."""
    problem = str(error) if isinstance(error, Im2SpError) else f"{type(error).__name__}: {error}"
    return Unmeasured(dataset, kind, problem, REBUILT_BY[kind])


def _published(store: Store, dataset: str, kind: str) -> tuple[StoreVersion, list[CommitMarker]] | None:
    """The current version of a kind and its commit markers; None when none is published.

    Raises:
        DamagedPointerError: If the pointer names a shard that has no commit marker: its items would go uncounted.
    """
    found = current_pointer(store, dataset, kind)
    if found is None:
        return None
    version, shards = found
    markers = version.committed()
    lost = sorted({str(shard) for shard in shards} - set(markers)) if isinstance(shards, list) else []
    if lost:
        raise DamagedPointerError(
            f"{store.url_of(f'{dataset}/{kind}/current.json')} names {len(lost)} shard(s) without a commit marker "
            f"({', '.join(lost[:5])}); rerun {REBUILT_BY[kind]} to rebuild them"
        )
    return version, list(markers.values())


#: The manifest columns the entries look up by item id.
_SOURCE_COLUMNS = {"images": ["id", "bytes"], "utterances": ["id", "bytes", "duration", "image_id"]}


def _source_rows(store: Store, dataset: str, table: str, memo: SourceRows | None) -> dict[str, dict[str, Any]]:
    """Rows of the current manifests by item id, for the entries' source sizes; none when they cannot be read.

    Unreadable manifests are listed (as unmeasured sources) by :func:`source_entries`' own read, so the unit,
    feature and training-shard entries lose only what comes from the manifests (``source_bytes`` and
    ``raw_bits``, then 0), never their items or stored sizes. ``memo`` keeps each table for the next entry.
    """
    if memo is not None and table in memo:
        return memo[table]
    try:
        sources = current_version(store, dataset, MANIFESTS)
        rows = read_table(sources, table).select(_SOURCE_COLUMNS[table]).to_pylist() if sources is not None else []
    except UNREADABLE:
        rows = []
    found = {row["id"]: row for row in rows}
    if memo is not None:
        memo[table] = found
    return found


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


def image_unit_entries(store: Store, dataset: str, memo: SourceRows | None = None) -> list[StorageEntry]:
    """Return the entry of a dataset's current image-unit store version (empty when none is published).

    ``unit_bits`` is the paper's fixed packing (1,024 tokens × ceil(log2 K) bits per image); ``stored_bytes``
    is every file of the version on disk, metadata and markers included.
    """
    published = _published(store, dataset, IMAGE_UNITS)
    if published is None:
        return []
    version, markers = published
    produced_by = version.info()["produced_by"]
    codebook_size = int(produced_by["codebook_size"])
    keys = [key for marker in markers for key in marker.keys]
    by_id = {key: row["bytes"] or 0 for key, row in _source_rows(store, dataset, "images", memo).items()}
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


def _speech_sizes(store: Store, dataset: str, keys: list[str], memo: SourceRows | None) -> tuple[int, int]:
    """Manifest bytes and 16 kHz 16-bit PCM bits of the given utterances (0 for a key not in the manifests)."""
    by_id = _source_rows(store, dataset, "utterances", memo)
    seconds = sum(float(by_id[key]["duration"] or 0.0) for key in keys if key in by_id)
    return sum(int(by_id[k]["bytes"] or 0) for k in keys if k in by_id), round(seconds * SPEECH_RAW_BITS_PER_SECOND)


def speech_unit_entries(store: Store, dataset: str, memo: SourceRows | None = None) -> list[StorageEntry]:
    """Return the entry of a dataset's current speech-unit version (empty when none is published).

    ``raw_bits`` is the stored utterances' 16 kHz 16-bit PCM (seconds × 256,000); ``unit_bits`` is their
    full-rate frames × ceil(log2 K); ``stored_bytes`` is every file of the version (runs, offsets, markers, metadata).
    """
    published = _published(store, dataset, SPEECH_UNITS)
    if published is None:
        return []
    version, markers = published
    produced_by = version.info()["produced_by"]
    codebook_size = int(produced_by["codebook_size"])
    keys = [key for marker in markers for key in marker.keys]
    frames = sum(stored_frames(marker.extra) for marker in markers)
    source_bytes, raw_bits = _speech_sizes(store, dataset, keys, memo)
    return [
        StorageEntry(
            dataset,
            "speech",
            "units",
            len(keys),
            source_bytes,
            raw_bits,
            frames * max(1, math.ceil(math.log2(codebook_size))),
            store.disk_usage(version.prefix),
            version.url,
            version.version,
            str(produced_by["codebook"]),
        )
    ]


def speech_feature_entries(store: Store, dataset: str, memo: SourceRows | None = None) -> list[StorageEntry]:
    """Return the entry of a dataset's current speech-features version (empty when none is published).

    ``items`` are the utterances it holds features of (with ``keep: sample`` only a fraction of each one's
    frames); ``raw_bits`` is their 16 kHz 16-bit PCM.
    """
    published = _published(store, dataset, SPEECH_FEATURES)
    if published is None:
        return []
    version, markers = published
    keys = [key for marker in markers for key in marker.keys]
    source_bytes, raw_bits = _speech_sizes(store, dataset, keys, memo)
    stored = store.disk_usage(version.prefix)
    return [
        StorageEntry(
            dataset, "speech", "features", len(keys), source_bytes, raw_bits, None, stored, version.url, version.version
        )
    ]


def training_shard_entries(store: Store, dataset: str, memo: SourceRows | None = None) -> list[StorageEntry]:
    """Return the entry of a dataset's current training shards (empty when none are published).

    One item per stored utterance (its image's units, its speech units, its caption); ``raw_bits`` counts the
    utterances' PCM plus each distinct image once as 256×256 RGB, ``source_bytes`` their files likewise.
    """
    published = _published(store, dataset, TRAINING_SHARDS)
    if published is None:
        return []
    version, markers = published
    keys = [key for marker in markers for key in marker.keys]
    speech = _source_rows(store, dataset, "utterances", memo)
    image_bytes = {key: row["bytes"] or 0 for key, row in _source_rows(store, dataset, "images", memo).items()}
    rows = [speech[key] for key in keys if key in speech]
    images = {row["image_id"] for row in rows}
    seconds = sum(float(row["duration"] or 0.0) for row in rows)
    return [
        StorageEntry(
            dataset,
            "image+speech",
            "training-shards",
            len(keys),
            sum(int(row["bytes"] or 0) for row in rows) + sum(int(image_bytes.get(i, 0)) for i in images),
            round(seconds * SPEECH_RAW_BITS_PER_SECOND) + len(images) * IMAGE_RAW_BITS,
            None,
            store.disk_usage(version.prefix),
            version.url,
            version.version,
        )
    ]


def codebook_entries(store: Store, kind: str, modality: str) -> list[StorageEntry]:
    """Return the entry of a shared codebook's current version (``items``: its K; empty when none is published)."""
    published = _published(store, SHARED, kind)
    if published is None:
        return []
    version, _ = published
    produced_by = version.info().get("produced_by") or {}
    size = int(produced_by.get("codebook_size") or produced_by.get("clusters") or 0)
    stored = store.disk_usage(version.prefix)
    return [StorageEntry(SHARED, modality, "codebook", size, 0, 0, None, stored, version.url, version.version)]


def checkpoint_entries(store: Store, problems: list[Unmeasured]) -> list[StorageEntry]:
    """Return one entry per training run (``items``: its committed checkpoints); unreadable runs go to ``problems``."""
    entries = []
    for run in list_versions(store, SHARED, TRAIN_RUNS):
        try:
            # Marker files, counted without reading them: a running trainer prunes old checkpoints meanwhile.
            checkpoints = len(run.marker_ids())
            stored = store.disk_usage(run.prefix)
        except UNREADABLE as error:
            problems.append(as_unmeasured(SHARED, TRAIN_RUNS, error))
            continue
        entries.append(
            StorageEntry(SHARED, "model", "checkpoints", checkpoints, 0, 0, None, stored, run.url, run.version)
        )
    return entries


def vocoder_entries(store: Store, problems: list[Unmeasured]) -> list[StorageEntry]:
    """Return one entry per learned vocoder (``items``: the K of the speech codebook it speaks; ``codebook``: its id).

    Unreadable ones go to ``problems``.
    """
    entries = []
    for version in list_versions(store, SHARED, VOCODERS):
        try:
            made = version.info().get("produced_by") or {}
            stored = store.disk_usage(version.prefix)
        except UNREADABLE as error:
            problems.append(as_unmeasured(SHARED, VOCODERS, error))
            continue
        clusters, codebook = int(made.get("clusters") or 0), made.get("codebook")
        entries.append(
            StorageEntry(
                SHARED, "speech", "vocoder", clusters, 0, 0, None, stored, version.url, version.version, codebook
            )
        )
    return entries
