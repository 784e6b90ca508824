"""What every per-shard flow does around its tasks: jobs from the manifests, run, prune, publish, sum up."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from storage.errors import Im2SpError
from storage.kinds import MANIFESTS
from storage.manifests import ok_rows, planned_shards
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tasks.jobs import ShardJob, ShardOutcome

#: The manifest table that lists each modality's items.
_TABLES = {"image": "images", "speech": "utterances"}


@dataclass(frozen=True)
class ShardedResult:
    """What a per-shard flow did for one dataset."""

    dataset: str
    version: str
    url: str
    shards_built: int
    shards_skipped: int
    stored: int
    rejected: int
    stored_bytes: int


def manifest_jobs(store: Store, dataset: str, modality: str) -> tuple[str, list[ShardJob], dict[str, str]]:
    """The current manifests' shards of one modality as jobs; also each ok item's path.

    Raises:
        Im2SpError: If the dataset has no manifests yet.
    """
    manifests = current_version(store, dataset, MANIFESTS)
    if manifests is None:
        raise Im2SpError(f"dataset {dataset!r} has no manifests yet; run build-manifests first")
    rows = ok_rows(manifests, _TABLES[modality], ["path", "sha256"])
    jobs = [
        ShardJob(
            dataset,
            shard.shard_id,
            shard.fingerprint,
            tuple((key, rows[key]["path"], rows[key]["sha256"]) for key in shard.items),
        )
        for shard in planned_shards(manifests, modality)
    ]
    return manifests.version, jobs, {key: row["path"] for key, row in rows.items()}


def run_and_publish(
    version: StoreVersion,
    jobs: list[ShardJob],
    submit: Callable[..., Any],
    on_done: Callable[[int, int], object] | None = None,
) -> ShardedResult:
    """Submit one task per job (``submit(job=...)``), wait for all, drop shards of an earlier plan, publish.

    Shards of an earlier plan (items moved after a manifest change) would otherwise be counted twice.
    """
    futures = [submit(job=job) for job in jobs]
    outcomes: list[ShardOutcome] = []
    for future in futures:
        outcomes.append(future.result())
        if on_done is not None:
            on_done(len(outcomes), len(futures))
    planned = [job.shard_id for job in jobs]
    version.prune(planned)
    version.publish(planned)
    return summarise(version, outcomes)


def summarise(version: StoreVersion, outcomes: Iterable[ShardOutcome]) -> ShardedResult:
    """Sum shard outcomes into a dataset result (bytes: every file of the version on disk)."""
    done = list(outcomes)
    return ShardedResult(
        version.dataset,
        version.version,
        version.url,
        sum(o.built for o in done),
        sum(not o.built for o in done),
        sum(o.stored for o in done),
        sum(o.rejected for o in done),
        version.store.disk_usage(version.prefix),
    )
