"""One spec per store kind: its folder, writer, reader, the flow that rebuilds it and how the report measures it.

Everything that asks "which kinds are there" reads :data:`STORE_KINDS`: the storage report (entries and stale
versions), ``im2sp verify`` and every "rerun <flow>" message (``storage.kinds.REBUILT_BY``). Adding a store kind
is its writer/reader module, one entry here, and its section in docs/FORMAT.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from storage.blob_writer import BlobWriter
from storage.kinds import (
    IMAGE_CODEBOOK,
    IMAGE_UNITS,
    MANIFESTS,
    REBUILT_BY,
    SPEECH_CODEBOOK,
    SPEECH_FEATURES,
    SPEECH_UNITS,
    TRAIN_RUNS,
    TRAINING_SHARDS,
    VOCODERS,
)
from storage.manifests import read_table
from storage.parquet_writer import ParquetTablesWriter
from storage.reader import iter_ragged, iter_webdataset, read_units, verified_local_copy
from storage.report_measures import (
    Measuring,
    StorageEntry,
    checkpoint_entries,
    codebook_entries,
    image_unit_entries,
    source_entries,
    speech_feature_entries,
    speech_unit_entries,
    training_shard_entries,
    vocoder_entries,
)
from storage.speech_units_writer import SpeechUnitsWriter, read_speech_units
from storage.webdataset_writer import WebDatasetWriter
from storage.writer import ShardWriter
from storage.zarr_writers import ZarrRaggedWriter, ZarrUnitsWriter

#: ``dataset``: one store per configured dataset (``<root>/<dataset>/<kind>``); ``shared``: one under ``_shared``.
Scope = Literal["dataset", "shared"]
#: How the storage report measures a kind's current version: its entries (raises when it cannot be read).
Measure = Callable[[Measuring], list[StorageEntry]]


@dataclass(frozen=True)
class StoreKindSpec:
    """Everything the code asks about one store kind.

    Attributes:
        name: The kind folder (``<root>/<dataset>/<name>/<version>``).
        scope: Per dataset, or one store under ``_shared``.
        rebuilt_by: The flow whose rerun rebuilds it (named in every "rerun …" message and report line).
        writer: The shard writer its flow writes with.
        reader: The function that reads one committed shard of it back.
        measure: How the storage report measures its current version (docs/FORMAT.md §13).
        entry_order: Where its entries come in the report, within its scope (docs/FORMAT.md §13).
        stale: Whether a version no pointer names is listed as stale (reclaimable unless a downstream version
            reads it: ``storage.lineage.kept_by_downstream``); training runs are not.
    """

    name: str
    scope: Scope
    rebuilt_by: str
    writer: type[ShardWriter]
    reader: Callable[..., Any]
    measure: Measure
    entry_order: int
    stale: bool = True


#: Every store kind, in pipeline order (the order of docs/FORMAT.md §2; stale versions are listed in it).
STORE_KINDS: tuple[StoreKindSpec, ...] = (
    StoreKindSpec(
        MANIFESTS,
        "dataset",
        REBUILT_BY[MANIFESTS],
        ParquetTablesWriter,
        read_table,
        lambda m: source_entries(m.store, m.dataset, m.roots),
        entry_order=0,
    ),
    StoreKindSpec(
        IMAGE_CODEBOOK,
        "shared",
        REBUILT_BY[IMAGE_CODEBOOK],
        BlobWriter,
        verified_local_copy,
        lambda m: codebook_entries(m.store, IMAGE_CODEBOOK, "image"),
        entry_order=0,
    ),
    StoreKindSpec(
        IMAGE_UNITS,
        "dataset",
        REBUILT_BY[IMAGE_UNITS],
        ZarrUnitsWriter,
        read_units,
        lambda m: image_unit_entries(m.store, m.dataset, m.memo),
        entry_order=1,
    ),
    StoreKindSpec(
        SPEECH_FEATURES,
        "dataset",
        REBUILT_BY[SPEECH_FEATURES],
        ZarrRaggedWriter,
        iter_ragged,
        lambda m: speech_feature_entries(m.store, m.dataset, m.memo),
        entry_order=3,
    ),
    StoreKindSpec(
        SPEECH_CODEBOOK,
        "shared",
        REBUILT_BY[SPEECH_CODEBOOK],
        BlobWriter,
        verified_local_copy,
        lambda m: codebook_entries(m.store, SPEECH_CODEBOOK, "speech"),
        entry_order=1,
    ),
    StoreKindSpec(
        SPEECH_UNITS,
        "dataset",
        REBUILT_BY[SPEECH_UNITS],
        SpeechUnitsWriter,
        read_speech_units,
        lambda m: speech_unit_entries(m.store, m.dataset, m.memo),
        entry_order=2,
    ),
    StoreKindSpec(
        TRAINING_SHARDS,
        "dataset",
        REBUILT_BY[TRAINING_SHARDS],
        WebDatasetWriter,
        iter_webdataset,
        lambda m: training_shard_entries(m.store, m.dataset, m.memo),
        entry_order=4,
    ),
    StoreKindSpec(
        TRAIN_RUNS,
        "shared",
        REBUILT_BY[TRAIN_RUNS],
        BlobWriter,
        verified_local_copy,
        lambda m: checkpoint_entries(m.store, m.problems),
        entry_order=2,
        stale=False,  # every run is measured (one entry each); none is current
    ),
    StoreKindSpec(
        VOCODERS,
        "shared",
        REBUILT_BY[VOCODERS],
        BlobWriter,
        verified_local_copy,
        lambda m: vocoder_entries(m.store, m.problems),
        entry_order=3,
        stale=False,  # every vocoder is measured (one entry each); its pointer is per codebook, not current.json
    ),
)


def kinds_of(scope: Scope) -> tuple[StoreKindSpec, ...]:
    """The kinds of one scope, in pipeline order."""
    return tuple(spec for spec in STORE_KINDS if spec.scope == scope)


def measured_kinds(scope: Scope) -> tuple[StoreKindSpec, ...]:
    """The kinds of one scope in the order their entries come in the storage report."""
    return tuple(sorted(kinds_of(scope), key=lambda spec: spec.entry_order))
