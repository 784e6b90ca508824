"""Flow ``extract-speech-features``: ragged float16 features per dataset, versioned by what produced them."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.config import PipelineConfig
from flows.runner import shard_runner
from flows.sharded import ShardedResult, manifest_jobs, run_and_publish
from storage.hashing import fingerprint
from storage.kinds import SPEECH_FEATURES
from storage.versions import StoreVersion
from tasks.models import ExtractorRef, extractor_for
from tasks.speech_features import extract_shard_task

#: What extract-speech-features did for one dataset.
DatasetFeatures = ShardedResult


def extractor_ref(config: PipelineConfig) -> ExtractorRef:
    """The configured extractor as a loadable reference."""
    speech = config.speech
    return ExtractorRef(speech.features, str(speech.checkpoint or ""), config.device, speech.settings())


def features_version_id(config: PipelineConfig, extractor_fingerprint: str) -> str:
    """Version id: the extractor plus what was kept (a different sample is a different store)."""
    speech = config.speech
    kept = (
        {"keep": speech.keep, "fraction": speech.sample_fraction, "seed": speech.seed}
        if speech.keep == "sample"
        else {"keep": "all"}
    )
    return fingerprint({"extractor": extractor_fingerprint, **kept, "chunk_seconds": speech.chunk_seconds})


@flow(name="extract-speech-features")
def extract_speech_features_flow(config: PipelineConfig) -> list[DatasetFeatures]:
    """Extract features for every configured dataset's utterances; committed shards are skipped."""
    logger = get_run_logger()
    store = config.store.open()
    options = config.store.options
    speech = config.speech
    ref = extractor_ref(config)
    extractor = extractor_for(ref)
    version_id = features_version_id(config, extractor.fingerprint)
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
                    store_url=config.store.url,
                    storage_options=options,
                    root=str(spec.root),
                    version_id=version_id,
                    ref=ref,
                    keep=speech.keep,
                    fraction=speech.sample_fraction,
                    seed=speech.seed,
                    batch_size=speech.batch_size,
                    io_workers=config.sharding.io_workers,
                    chunk_seconds=speech.chunk_seconds,
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
