"""Flow ``unitize-speech``: speech units (full rate + deduplicated) per dataset, per (features, codebook)."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.config import PipelineConfig
from flows.extract_speech_features import extractor_ref, features_version_id
from flows.runner import shard_runner
from flows.sharded import ShardedResult, manifest_jobs, run_and_publish
from storage.errors import Im2SpError
from storage.kinds import SPEECH_FEATURES, SPEECH_UNITS
from storage.report import speech_unit_entries
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tasks.models import extractor_for
from tasks.speech_codebook import current_speech_codebook
from tasks.speech_units import UnitSource, unitize_shard_task, units_version_id

#: What unitize-speech did for one dataset.
DatasetSpeechUnits = ShardedResult


@dataclass(frozen=True)
class SpeechUnitsPlan:
    """What unitize-speech would write now: the current codebook, where frames come from, the version id."""

    codebook_id: str
    clusters: int
    features_id: str
    source: UnitSource
    version_id: str


def speech_units_plan(config: PipelineConfig, store: Store) -> SpeechUnitsPlan:
    """Resolve the current speech codebook and the configured extractor to the speech-units version id.

    Raises:
        Im2SpError: No speech codebook yet, or one learned on another extractor's features.
    """
    found = current_speech_codebook(store)
    if found is None:
        raise Im2SpError("no speech codebook yet: run learn-speech-codebook first")
    codebook_id, centroids, meta = found
    ref = extractor_ref(config)
    extractor = extractor_for(ref)
    if meta.get("extractor_fingerprint") != extractor.fingerprint:
        raise Im2SpError(
            f"speech codebook {codebook_id} was learned on features of extractor {meta.get('extractor_fingerprint')}; "
            f"the config's extractor is {extractor.fingerprint}: run learn-speech-codebook, or import a matching one"
        )
    features_id = features_version_id(config, extractor.fingerprint)
    source = UnitSource(features_id, config.speech.keep, ref, config.speech.chunk_seconds)
    version_id = units_version_id(features_id, codebook_id, source.feature_dtype)
    return SpeechUnitsPlan(codebook_id, len(centroids), features_id, source, version_id)


@flow(name="unitize-speech")
def unitize_speech_flow(config: PipelineConfig, datasets: list[str] | None = None) -> list[DatasetSpeechUnits]:
    """Assign every utterance's frames to the current speech codebook (all datasets, or those named)."""
    logger = get_run_logger()
    store = config.store.open()
    options = config.store.options
    speech = config.speech
    plan = speech_units_plan(config, store)
    codebook_id, source, version_id, features_id = plan.codebook_id, plan.source, plan.version_id, plan.features_id
    results = []
    with shard_runner(config, uses_device=True) as runner:
        for dataset, spec in config.selected(datasets).items():
            features = current_version(store, dataset, SPEECH_FEATURES)
            if speech.keep == "all" and (features is None or features.version != features_id):
                raise Im2SpError(
                    f"dataset {dataset!r} has no current features {features_id}; run extract-speech-features"
                )
            manifest_version, jobs, _ = manifest_jobs(store, dataset, "speech")
            version = StoreVersion(store, dataset, SPEECH_UNITS, version_id)
            version.ensure_created(
                {
                    "features": features_id,
                    "codebook": codebook_id,
                    "codebook_size": plan.clusters,
                    "keep": speech.keep,
                    "feature_dtype": source.feature_dtype,
                    "manifests": manifest_version,
                }
            )
            result = run_and_publish(
                version,
                jobs,
                runner.bind(
                    unitize_shard_task,
                    store_url=config.store.url,
                    storage_options=options,
                    root=str(spec.root),
                    version_id=version_id,
                    source=source,
                    codebook_id=codebook_id,
                    clusters=plan.clusters,
                    batch_size=speech.batch_size,
                    io_workers=config.sharding.io_workers,
                ),
            )
            logger.info(
                "%s: %d utterances unitized, %d rejected → %s", dataset, result.stored, result.rejected, result.url
            )
            rows = [
                {
                    "dataset": e.dataset,
                    "items": e.items,
                    "raw_bits": e.raw_bits,
                    "unit_bits": e.unit_bits,
                    "stored_bytes": e.stored_bytes,
                    "stored_vs_pcm": f"{e.stored_bytes * 8 / max(1, e.raw_bits):.4%}",
                }
                for e in speech_unit_entries(store, dataset)
            ]
            create_table_artifact(key=f"speech-units-{dataset}", table=rows, description=f"Speech units of {dataset}")
            results.append(result)
    return results
