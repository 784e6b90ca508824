"""Flow ``extract-speech-features``: ragged float16 features per dataset, versioned by what produced them."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.config import PipelineConfig
from storage.errors import Im2SpError
from storage.hashing import fingerprint
from storage.kinds import MANIFESTS, SPEECH_FEATURES
from storage.manifests import ok_rows, planned_shards
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tasks.jobs import ShardJob, ShardOutcome
from tasks.speech_features import extract_shard_task
from tasks.tokenizers import ExtractorRef, extractor_for


@dataclass(frozen=True)
class DatasetFeatures:
    """What extract-speech-features did for one dataset."""

    dataset: str
    version: str
    url: str
    shards_built: int
    shards_skipped: int
    stored: int
    rejected: int
    stored_bytes: int


def extractor_ref(config: PipelineConfig) -> ExtractorRef:
    """The configured extractor as a loadable reference."""
    speech = config.speech
    options = {"layer": speech.layer, "batch_size": speech.batch_size} if speech.features == "hubert" else {}
    return ExtractorRef(speech.features, str(speech.checkpoint or ""), config.device, options)


def features_version_id(config: PipelineConfig, extractor_fingerprint: str) -> str:
    """Version id: the extractor plus what was kept (a different sample is a different store)."""
    speech = config.speech
    kept = (
        {"keep": speech.keep, "fraction": speech.sample_fraction, "seed": speech.seed}
        if speech.keep == "sample"
        else {"keep": "all"}
    )
    return fingerprint({"extractor": extractor_fingerprint, **kept, "chunk_seconds": speech.chunk_seconds})


def speech_jobs(store: Store, dataset: str) -> tuple[str, list[ShardJob]]:
    """The current manifests' speech shards as jobs (id, wav path, sha256 per utterance)."""
    manifests = current_version(store, dataset, MANIFESTS)
    if manifests is None:
        raise Im2SpError(f"dataset {dataset!r} has no manifests yet; run build-manifests first")
    rows = ok_rows(manifests, "utterances", ["path", "sha256"])
    jobs = [
        ShardJob(
            dataset,
            shard.shard_id,
            shard.fingerprint,
            tuple((key, rows[key]["path"], rows[key]["sha256"]) for key in shard.items),
        )
        for shard in planned_shards(manifests, "speech")
    ]
    return manifests.version, jobs


@flow(name="extract-speech-features")
def extract_speech_features_flow(config: PipelineConfig) -> list[DatasetFeatures]:
    """Extract features for every configured dataset's utterances; committed shards are skipped."""
    logger = get_run_logger()
    store = Store(config.store.url, config.store.storage_options or None)
    options = config.store.storage_options or None
    speech = config.speech
    ref = extractor_ref(config)
    extractor = extractor_for(ref)
    version_id = features_version_id(config, extractor.fingerprint)
    results = []
    for dataset, spec in config.datasets.items():
        manifest_version, jobs = speech_jobs(store, dataset)
        version = StoreVersion(store, dataset, SPEECH_FEATURES, version_id)
        version.ensure_created(
            {
                "extractor": ref.name,
                "fingerprint": extractor.fingerprint,
                "dim": extractor.dim,
                "layer": speech.layer if ref.name == "hubert" else None,
                "keep": speech.keep,
                "sample_fraction": speech.sample_fraction,
                "seed": speech.seed,
                "manifests": manifest_version,
            }
        )
        futures = [
            extract_shard_task.submit(
                config.store.url,
                options,
                str(spec.root),
                job,
                version_id,
                ref,
                speech.keep,
                speech.sample_fraction,
                speech.seed,
                speech.batch_size,
                config.sharding.io_workers,
                speech.chunk_seconds,
            )
            for job in jobs
        ]
        outcomes: list[ShardOutcome] = [future.result() for future in futures]
        version.prune(job.shard_id for job in jobs)
        version.publish([job.shard_id for job in jobs])
        result = DatasetFeatures(
            dataset,
            version_id,
            version.url,
            sum(o.built for o in outcomes),
            sum(not o.built for o in outcomes),
            sum(o.stored for o in outcomes),
            sum(o.rejected for o in outcomes),
            store.disk_usage(version.prefix),
        )
        logger.info("%s: %d utterances stored, %d rejected → %s", dataset, result.stored, result.rejected, result.url)
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
