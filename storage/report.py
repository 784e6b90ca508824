"""The storage report contract: one entry per (dataset, modality, representation), sizes measured on disk.

``im2sp report storage --json`` prints ``{"format_version": 2, "entries": [...], "stale_versions": [...],
"reclaimable_bytes": N, "kept_versions": [...], "unmeasured": [...]}``. Raw bits are counted at
the model inputs: images as 256×256 RGB bytes, speech as 16 kHz 16-bit PCM. Every store has its entry: the
source files (from the current manifests), image units, speech units, speech features and training shards per
dataset, and the shared codebooks and training runs. Which kinds there are, and how each is measured
(``storage/report_measures.py``), is their spec in ``storage/kind_specs.py``; this module walks the specs.

A store whose control files or markers cannot be read (a damaged ``current.json``, ``version.json`` or commit
marker, a format this code does not know) is listed under ``unmeasured`` with the reason and the flow whose
rerun repairs it, and the rest of the report is still measured: one damaged file never hides every size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from storage.errors import Im2SpError
from storage.format import FORMAT_VERSION
from storage.kind_specs import Scope, kinds_of, measured_kinds
from storage.kinds import SHARED
from storage.lineage import kept_by_downstream
from storage.report_measures import (
    IMAGE_RAW_BITS,
    SPEECH_RAW_BITS_PER_SECOND,
    TOKENS_PER_IMAGE,
    UNREADABLE,
    Measuring,
    SourceRows,
    StorageEntry,
    Unmeasured,
    as_unmeasured,
    image_unit_entries,
    source_entries,
    speech_feature_entries,
    speech_unit_entries,
    training_shard_entries,
)
from storage.store import Store
from storage.versions import StoreVersion, stale_versions

__all__ = [
    "IMAGE_RAW_BITS",
    "SPEECH_RAW_BITS_PER_SECOND",
    "TOKENS_PER_IMAGE",
    "UNREADABLE",
    "SourceRows",
    "StaleVersion",
    "StorageEntry",
    "Unmeasured",
    "dataset_entries",
    "image_unit_entries",
    "report_json",
    "shared_entries",
    "source_entries",
    "speech_feature_entries",
    "speech_unit_entries",
    "stale_entries",
    "training_shard_entries",
]


def _measure_all(measuring: Measuring, scope: Scope) -> tuple[list[StorageEntry], list[Unmeasured]]:
    """The entries of every kind of a scope, in report order, and the stores that could not be read."""
    entries: list[StorageEntry] = []
    for spec in measured_kinds(scope):
        try:
            entries.extend(spec.measure(measuring))
        except UNREADABLE as error:
            measuring.problems.append(as_unmeasured(measuring.dataset, spec.name, error))
    return entries, measuring.problems


def dataset_entries(store: Store, dataset: str, roots: dict[str, str]) -> tuple[list[StorageEntry], list[Unmeasured]]:
    """Every entry of one dataset, and the stores that could not be read.

    Entries: sources, image and speech units, speech features, training shards (in that order).

    Args:
        store: The store root.
        dataset: Dataset name.
        roots: Display path per modality (``image``, ``speech``) for the ``source`` entries' ``path``.
    """
    return _measure_all(Measuring(store, dataset, roots), "dataset")


def shared_entries(store: Store) -> tuple[list[StorageEntry], list[Unmeasured]]:
    """Entries of the shared stores, and those that could not be read.

    The current image and speech codebooks (``items``: codebook entries) and every training run (``items``:
    committed checkpoints), each with its bytes on disk.
    """
    return _measure_all(Measuring(store, SHARED), "shared")


@dataclass(frozen=True)
class StaleVersion:
    """A store version that no ``current`` pointer names: an earlier build, or one not finished yet.

    ``kept_because``: why it is not reclaimable although no pointer names it (a downstream version reads it:
    ``storage.lineage.kept_by_downstream``); empty when deleting it frees its bytes.
    """

    dataset: str
    kind: str
    version: str
    created_at: str
    stored_bytes: int
    kept_because: str = ""


def stale_entries(store: Store, datasets: list[str]) -> tuple[list[StaleVersion], list[Unmeasured]]:
    """Every version of the datasets' stores (and shared codebooks) that is not current, newest first.

    A kind whose pointer cannot be read lists no stale version (which one is current is not known, so none is
    called reclaimable) and is returned among the unmeasured stores instead. A version that a downstream
    version still reads (training shards a training run was trained on, the units the current training shards
    name, …) is listed with the reason it is kept.
    """
    out = []
    problems = []
    scopes = [*((d, kinds_of("dataset")) for d in datasets), (SHARED, kinds_of("shared"))]
    for dataset, specs in scopes:
        kept = kept_by_downstream(store, dataset) if dataset != SHARED else {}
        for kind in (spec.name for spec in specs if spec.stale):
            try:
                versions: list[StoreVersion] = stale_versions(store, dataset, kind)
            except UNREADABLE as error:
                problems.append(as_unmeasured(dataset, kind, error))
                continue
            for version in versions:
                try:
                    created = str(version.info().get("created_at", ""))
                except (Im2SpError, OSError, ValueError):
                    created = ""
                why = kept.get((kind, version.version), "")
                out.append(StaleVersion(dataset, kind, version.version, created, store.disk_usage(version.prefix), why))
    return out, problems


def report_json(
    entries: list[StorageEntry], stale: list[StaleVersion] | None = None, unmeasured: list[Unmeasured] | None = None
) -> dict[str, Any]:
    """Return the report document of the storage report contract."""
    reclaimable = [v for v in stale or [] if not v.kept_because]
    kept = [v for v in stale or [] if v.kept_because]
    return {
        "format_version": FORMAT_VERSION,
        "entries": [asdict(e) for e in entries],
        "stale_versions": [_without_reason(v) for v in reclaimable],
        "reclaimable_bytes": sum(v.stored_bytes for v in reclaimable),
        "kept_versions": [asdict(v) for v in kept],
        "unmeasured": [asdict(u) for u in unmeasured or []],
    }


def _without_reason(version: StaleVersion) -> dict[str, Any]:
    """A reclaimable version as the report lists it (the fields it always had)."""
    document = asdict(version)
    del document["kept_because"]
    return document
