"""Assembling the storage report from a config: which stores exist for each configured dataset."""

from __future__ import annotations

from flows.config import PipelineConfig
from storage.report import StorageEntry, image_unit_entries, source_entries, speech_unit_entries
from storage.sources.spec import CocoSpec


def collect_storage_entries(config: PipelineConfig) -> list[StorageEntry]:
    """Return the storage report entries of every configured dataset."""
    store = config.store.open()
    entries: list[StorageEntry] = []
    for name, spec in config.datasets.items():
        images = spec.images if isinstance(spec, CocoSpec) else (spec.images or "")
        roots = {"image": str(spec.root / images), "speech": str(spec.root / (spec.speech or ""))}
        entries.extend(source_entries(store, name, roots))
        entries.extend(image_unit_entries(store, name))
        entries.extend(speech_unit_entries(store, name))
    return entries
