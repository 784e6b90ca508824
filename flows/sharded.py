"""What every per-shard flow does around its tasks: jobs from the manifests, run, prune, publish, sum up."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from storage.errors import Im2SpError
from storage.kinds import MANIFESTS, REBUILT_BY
from storage.lineage import check_inputs
from storage.manifests import ok_media, planned_shards
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tasks.jobs import ShardJob, ShardOutcome, already_committed

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
    media = ok_media(manifests, _TABLES[modality])
    jobs = [
        ShardJob(dataset, shard.shard_id, shard.fingerprint, tuple((key, *media[key]) for key in shard.items))
        for shard in planned_shards(manifests, modality)
    ]
    return manifests.version, jobs, {key: path for key, (path, _) in media.items()}


def run_and_publish(
    version: StoreVersion,
    jobs: list[ShardJob],
    submit: Callable[..., Any],
    on_done: Callable[[int, int], object] | None = None,
) -> ShardedResult:
    """Submit a task per job still to build (``submit(job=...)``), wait for all, drop earlier plans' shards, publish.

    Jobs whose shard is committed for the same inputs (and not flagged by verify) get no task: a rerun with
    nothing to do costs one marker listing and a read per marker, not a Prefect task run per shard. The
    task checks again under the shard's lock, so a concurrent run still builds each shard once. Shards of an
    earlier plan (items moved after a manifest change) would otherwise be counted twice.

    Raises:
        StaleInputError: An input shard of a job to build is missing or of another plan (checked before any task
            starts; each task checks its own again before it commits).
    """
    outcomes = committed_outcomes(version, jobs)
    todo = [job for job in jobs if job.shard_id not in outcomes]
    check_inputs(version.store, version.dataset, (i for job in todo for i in job.inputs), REBUILT_BY[version.kind])
    futures = [submit(job=job) for job in todo]
    for done, future in enumerate(futures, start=1):
        outcome = future.result()
        outcomes[outcome.shard_id] = outcome
        if on_done is not None:
            on_done(done, len(futures))
    if on_done is not None and not futures:
        on_done(1, 1)
    planned = [job.shard_id for job in jobs]
    version.prune(planned)
    version.publish(planned)
    return summarise(version, outcomes.values())


def committed_outcomes(version: StoreVersion, jobs: list[ShardJob]) -> dict[str, ShardOutcome]:
    """The skipped outcome of every job whose shard is already committed for its inputs, by shard id."""
    present = set(version.marker_ids())  # one listing: most shards of a first run have no marker to read
    found = (already_committed(version, job) for job in jobs if job.shard_id in present)
    return {outcome.shard_id: outcome for outcome in found if outcome is not None}


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
