"""Task: build one dataset's manifests and shard plan."""

from __future__ import annotations

from typing import Any

from prefect import task

from storage.manifests import ManifestResult, build_manifests
from storage.sources.source import SourceSpec
from storage.store import Store


@task(name="build-dataset-manifests", task_run_name="manifests-{name}")
def build_dataset_manifests(
    store_url: str,
    name: str,
    spec: SourceSpec,
    shard_size: int,
    workers: int = 4,
    storage_options: dict[str, Any] | None = None,
) -> ManifestResult:
    """Build (or find up to date) the manifests of one dataset; returns counts and the version URL."""
    store = Store(store_url, storage_options)
    return build_manifests(store, name, spec, shard_size=shard_size, workers=workers)
