"""Task: build one dataset's manifests and shard plan."""

from __future__ import annotations

from prefect import task

from storage.manifests import ManifestResult, build_manifests
from storage.sources.source import SourceSpec
from storage.store import StoreRef


@task(name="build-dataset-manifests", task_run_name="manifests-{name}")
def build_dataset_manifests(
    store: StoreRef, name: str, spec: SourceSpec, shard_size: int, workers: int = 4, speech_plan: str | None = None
) -> ManifestResult:
    """Build (or find up to date) the manifests of one dataset; returns counts and the version URL."""
    return build_manifests(store.open(), name, spec, shard_size=shard_size, workers=workers, speech_plan=speech_plan)
