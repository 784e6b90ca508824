"""Flow ``build-manifests``: every dataset's manifests (Parquet) and shard plan, one task per dataset."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.config import PipelineConfig
from flows.runner import shard_runner
from storage.manifests import ManifestResult
from tasks.manifests import build_dataset_manifests


@flow(name="build-manifests", log_prints=False)
def build_manifests_flow(config: PipelineConfig) -> list[ManifestResult]:
    """Build or confirm the manifests of every configured dataset; a rerun on unchanged sources is a no-op."""
    logger = get_run_logger()
    with shard_runner(config) as runner:
        submit = runner.bind(
            build_dataset_manifests,
            store=config.store.ref(),
            shard_size=config.sharding.shard_size,
            workers=config.sharding.io_workers,
            speech_plan=config.sharding.speech_plan,
        )
        futures = [submit(name=name, spec=spec) for name, spec in config.datasets.items()]
        results = [future.result() for future in futures]
    rows = []
    for result in results:
        for table, counts in result.counts.items():
            rows.append({"dataset": result.dataset, "table": table, **counts, "version": result.version})
        state = "up to date" if result.skipped else "built"
        logger.info("%s manifests %s: %s", result.dataset, state, result.url)
    create_table_artifact(key="manifest-counts", table=rows, description="Items listed, ok and rejected per table")
    return results
