"""Flow ``build-training-shards``: image units + deduplicated speech units + text, one sample per utterance.

Per dataset, xz-compressed WebDataset shards join the current unit stores with the caption text.

The version is named by the manifests, image-units and speech-units versions it joins, so a new codebook
(through retokenize-images) leads to a new version; one task per planned speech shard, whose input fingerprint
also names the unit shards it reads as the plan expects them (``storage/lineage.py``): every one is checked
before any task starts, and a stale or missing one stops the run in one line naming the flow to rerun.
Committed shards are skipped and the pointer moves when every shard is committed.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.config import PipelineConfig
from flows.runner import shard_runner
from flows.sharded import ShardedResult, manifest_jobs, run_and_publish
from storage.errors import Im2SpError
from storage.hashing import fingerprint
from storage.kinds import IMAGE_UNITS, MANIFESTS, SPEECH_UNITS, TRAINING_SHARDS
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tasks.training_shards import TRAINING_COMPRESSION, TrainingSources, build_training_shard_task, training_jobs


@dataclass(frozen=True)
class DatasetTrainingShards(ShardedResult):
    """What build-training-shards did for one dataset, and its size against the unit stores it joins."""

    units_bytes: int = 0

    @property
    def ratio_to_units(self) -> float:
        """Bytes of the training shards over the bytes of the image-units and speech-units versions."""
        return self.stored_bytes / self.units_bytes if self.units_bytes else 0.0


def training_sources(store: Store, dataset: str, manifests: str) -> TrainingSources:
    """The current unit stores of a dataset.

    Raises:
        Im2SpError: A unit store is not published yet.
    """
    image = current_version(store, dataset, IMAGE_UNITS)
    speech = current_version(store, dataset, SPEECH_UNITS)
    if image is None or speech is None:
        missing = "tokenize-images" if image is None else "unitize-speech"
        raise Im2SpError(f"dataset {dataset!r} has no published {missing} output yet; run {missing} first")
    return TrainingSources(
        manifests=manifests,
        image_units=image.version,
        speech_units=speech.version,
        image_codebook=str(image.info()["produced_by"].get("fingerprint") or image.version),
        speech_codebook=str(speech.info()["produced_by"]["codebook"]),
    )


@flow(name="build-training-shards")
def build_training_shards_flow(
    config: PipelineConfig, datasets: list[str] | None = None
) -> list[DatasetTrainingShards]:
    """Join the current image and speech units with the captions into training shards, per dataset."""
    logger = get_run_logger()
    store_ref = config.store.ref()
    store = store_ref.open()
    results = []
    with shard_runner(config) as runner:
        for dataset in config.selected(datasets):
            manifest_version, planned, _ = manifest_jobs(store, dataset, "speech")
            sources = training_sources(store, dataset, manifest_version)
            jobs = training_jobs(StoreVersion(store, dataset, MANIFESTS, manifest_version), planned, sources)
            version = StoreVersion(store, dataset, TRAINING_SHARDS, fingerprint(vars(sources)))
            version.ensure_created({**vars(sources), "format": f"webdataset, {TRAINING_COMPRESSION}"})
            summary = run_and_publish(
                version,
                jobs,
                runner.bind(
                    build_training_shard_task,
                    store=store_ref,
                    version_id=version.version,
                    sources=sources,
                ),
            )
            units_bytes = sum(
                store.disk_usage(StoreVersion(store, dataset, kind, name).prefix)
                for kind, name in ((IMAGE_UNITS, sources.image_units), (SPEECH_UNITS, sources.speech_units))
            )
            result = DatasetTrainingShards(**vars(summary), units_bytes=units_bytes)
            logger.info(
                "%s: %d utterances in training shards, %d rejected, %d bytes = %.2f × the unit stores → %s",
                dataset,
                result.stored,
                result.rejected,
                result.stored_bytes,
                result.ratio_to_units,
                result.url,
            )
            create_table_artifact(
                key=f"training-shards-{dataset}",
                table=[
                    {
                        "dataset": dataset,
                        "utterances": result.stored,
                        "rejected": result.rejected,
                        "shards_built": result.shards_built,
                        "stored_bytes": result.stored_bytes,
                        "unit_stores_bytes": units_bytes,
                        "ratio": round(result.ratio_to_units, 3),
                    }
                ],
                description=f"Training shards of {dataset}",
            )
            results.append(result)
    return results
