"""Flow ``unitize-speech``: speech units (full rate + deduplicated) per dataset, per (features, codebook)."""

from __future__ import annotations

from dataclasses import replace

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.config import PipelineConfig
from flows.plans import speech_units_plan
from flows.runner import shard_runner
from flows.sharded import ShardedResult, manifest_jobs, run_and_publish
from storage.errors import Im2SpError
from storage.kinds import SPEECH_FEATURES, SPEECH_UNITS
from storage.report import speech_unit_entries
from storage.versions import StoreVersion, current_version
from tasks.speech_units import UnitCodebook, UnitizeSettings, features_input, unitize_shard_task

#: What unitize-speech did for one dataset.
DatasetSpeechUnits = ShardedResult


@flow(name="unitize-speech")
def unitize_speech_flow(config: PipelineConfig, datasets: list[str] | None = None) -> list[DatasetSpeechUnits]:
    """Assign every utterance's frames to the current speech codebook (all datasets, or those named)."""
    logger = get_run_logger()
    store_ref = config.store.ref()
    store = store_ref.open()
    speech = config.speech
    plan = speech_units_plan(config, store)
    codebook_id, source, version_id, features_id = plan.codebook_id, plan.source, plan.version_id, plan.features_id
    codebook = UnitCodebook(codebook_id, plan.clusters)
    settings = UnitizeSettings(speech.batch_size, config.sharding.io_workers)
    results = []
    with shard_runner(config, uses_device=True) as runner:
        for dataset, spec in config.selected(datasets).items():
            features = current_version(store, dataset, SPEECH_FEATURES)
            if speech.keep == "all" and (features is None or features.version != features_id):
                raise Im2SpError(
                    f"dataset {dataset!r} has no current features {features_id}; run extract-speech-features"
                )
            manifest_version, jobs, _ = manifest_jobs(store, dataset, "speech")
            if speech.keep == "all":  # each shard's stored features, checked against the plan before any task runs
                jobs = [replace(job, inputs=(features_input(job, source),)) for job in jobs]
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
                    store=store_ref,
                    root=str(spec.root),
                    version_id=version_id,
                    source=source,
                    codebook=codebook,
                    settings=settings,
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
