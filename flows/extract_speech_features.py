"""Flow ``extract-speech-features``: ragged float16 features per dataset, versioned by what produced them."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.config import PipelineConfig
from flows.plans import extractor_ref, features_version_id
from flows.runner import shard_runner
from flows.sharded import ShardedResult, manifest_jobs, run_and_publish
from storage.kinds import SPEECH_FEATURES
from storage.versions import StoreVersion
from tasks.models import extractor_for
from tasks.speech_features import ExtractSettings, extract_shard_task

#: What extract-speech-features did for one dataset.
DatasetFeatures = ShardedResult


@flow(name="extract-speech-features")
def extract_speech_features_flow(config: PipelineConfig) -> list[DatasetFeatures]:
    """Extract features for every configured dataset's utterances; committed shards are skipped."""
    logger = get_run_logger()
    store_ref = config.store.ref()
    store = store_ref.open()
    speech = config.speech
    ref = extractor_ref(config)
    extractor = extractor_for(ref)
    version_id = features_version_id(config, extractor.fingerprint)
    settings = ExtractSettings(
        keep=speech.keep,
        fraction=speech.sample_fraction,
        seed=speech.seed,
        batch_size=speech.batch_size,
        io_workers=config.sharding.io_workers,
        chunk_seconds=speech.chunk_seconds,
    )
    results = []
    with shard_runner(config, uses_device=True) as runner:
        for dataset, spec in config.datasets.items():
            manifest_version, jobs, _ = manifest_jobs(store, dataset, "speech")
            version = StoreVersion(store, dataset, SPEECH_FEATURES, version_id)
            version.ensure_created(
                {
                    "extractor": ref.name,
                    "fingerprint": extractor.fingerprint,
                    "dim": extractor.dim,
                    "layer": getattr(ref.settings, "layer", None),  # an extractor that reads one layer names it
                    "keep": speech.keep,
                    "sample_fraction": speech.sample_fraction,
                    "seed": speech.seed,
                    "manifests": manifest_version,
                }
            )
            result = run_and_publish(
                version,
                jobs,
                runner.bind(
                    extract_shard_task,
                    store=store_ref,
                    root=str(spec.root),
                    version_id=version_id,
                    ref=ref,
                    settings=settings,
                ),
            )
            logger.info(
                "%s: %d utterances stored, %d rejected → %s", dataset, result.stored, result.rejected, result.url
            )
            create_table_artifact(
                key=f"speech-features-{dataset}",
                table=[
                    {
                        "dataset": dataset,
                        "extractor": ref.name,
                        "keep": speech.keep,
                        "utterances": result.stored,
                        "rejected": result.rejected,
                        "stored_bytes": result.stored_bytes,
                        "version": version_id,
                    }
                ],
                description=f"Speech features of {dataset}",
            )
            results.append(result)
    return results
