"""The store-kind specs: one entry per kind, and the report and rerun messages follow them.

The last test follows the store-kind recipe: it adds one spec (a per-dataset kind written with an existing
writer) and the storage report measures it and lists its stale versions with no other change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import kind_specs
from storage.blob_writer import BlobWriter
from storage.kind_specs import STORE_KINDS, StoreKindSpec, kinds_of, measured_kinds
from storage.kinds import REBUILT_BY, SHARED
from storage.reader import verified_local_copy
from storage.report import dataset_entries, stale_entries
from storage.report_measures import Measuring, StorageEntry
from storage.store import Store
from storage.versions import StoreVersion, current_version
from storage.writer import ShardWriter

ROOT = Path(__file__).resolve().parents[1]


def test_each_kind_has_one_spec_and_every_rerun_message_reads_it() -> None:
    names = [spec.name for spec in STORE_KINDS]
    assert len(set(names)) == len(names) and SHARED not in names
    assert dict(REBUILT_BY) == {spec.name: spec.rebuilt_by for spec in STORE_KINDS}
    assert all(issubclass(spec.writer, ShardWriter) and callable(spec.reader) for spec in STORE_KINDS)
    for scope in ("dataset", "shared"):
        orders = [spec.entry_order for spec in kinds_of(scope)]
        assert len(set(orders)) == len(orders)


def test_the_specs_keep_the_documented_orders() -> None:
    # docs/FORMAT.md §13: entries per dataset, then _shared; stale versions in pipeline order.
    assert [s.name for s in measured_kinds("dataset")] == [
        "manifests",
        "image-units",
        "speech-units",
        "speech-features",
        "training-shards",
    ]
    assert [s.name for s in measured_kinds("shared")] == ["image-codebook", "speech-codebook", "train-runs", "vocoders"]
    stale = [s.name for s in kinds_of("dataset") + kinds_of("shared") if s.stale]
    assert stale == [
        "manifests",
        "image-units",
        "speech-features",
        "speech-units",
        "training-shards",
        "image-codebook",
        "speech-codebook",
    ]


def test_every_kind_is_documented_in_the_format() -> None:
    documented = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    assert all(f"`{spec.name}`" in documented for spec in STORE_KINDS)


def _notes_entries(measuring: Measuring) -> list[StorageEntry]:
    version = current_version(measuring.store, measuring.dataset, "notes")
    if version is None:
        return []
    files = len(version.require_marker("all").keys)
    stored = measuring.store.disk_usage(version.prefix)
    return [StorageEntry(measuring.dataset, "text", "notes", files, 0, 0, None, stored, version.url, version.version)]


NOTES = StoreKindSpec("notes", "dataset", "write-notes", BlobWriter, verified_local_copy, _notes_entries, entry_order=5)


def _write_notes(store: Store, version_name: str, text: bytes) -> None:
    version = StoreVersion(store, "coco", "notes", version_name)
    version.ensure_created({"test": True})
    with BlobWriter(version, "all", input_fingerprint=version_name) as writer:
        writer.write("readme.txt", {"bytes": text})
    version.publish(["all"])


def test_a_new_store_kind_is_one_spec_entry_for_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kind_specs, "STORE_KINDS", (*STORE_KINDS, NOTES))
    store = Store(str(tmp_path))
    _write_notes(store, "v1", b"first")
    _write_notes(store, "v2", b"second")
    entries, problems = dataset_entries(store, "coco", {})
    assert problems == [] and [(e.representation, e.items, e.version) for e in entries] == [("notes", 1, "v2")]
    stale, problems = stale_entries(store, ["coco"])
    assert problems == [] and [(v.kind, v.version) for v in stale] == [("notes", "v1")]


def test_every_kind_names_the_flow_that_rebuilds_it() -> None:
    from storage.kind_specs import STORE_KINDS
    from storage.kinds import REBUILT_BY

    assert {spec.name: spec.rebuilt_by for spec in STORE_KINDS} == dict(REBUILT_BY)
