"""One training shard: image units + deduplicated speech units + caption text per utterance (function + task).

A training shard covers one planned speech shard. Each stored sample is one utterance, keyed by the utterance
id, with ``image.npy`` (the image's 32 × 32 units), ``units.npy`` (its deduplicated speech units), ``txt``
(the caption text) and ``json`` (image id, split, full-rate frames). Samples are ordered by image id, so the
five or so utterances of an image sit together and xz stores the repeated image units almost for free.
An utterance whose speech units or image units were not stored is rejected with the upstream reason.

Lineage (``storage/lineage.py``): a job names the speech-units shard and every image-units shard it reads, with
the plan fingerprint each marker must carry; its own input fingerprint hashes them, so a training shard built
from units of another plan is rebuilt once they catch up. Each input is checked when read and again just
before the commit: a missing or stale input fails the task in one line naming the flow to rerun.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from prefect import task

from storage.dedup import dedup
from storage.errors import StaleInputError
from storage.keyed_cache import KeyedCache
from storage.kinds import IMAGE_UNITS, MANIFESTS, REBUILT_BY, SPEECH_UNITS, TRAINING_SHARDS
from storage.lineage import InputShard, checked_input, lineage_fingerprint, unchanged_since
from storage.manifests import image_shards_by_speech_shard, ok_rows_for, planned_shards
from storage.marker import CommitMarker
from storage.reader import read_units
from storage.speech_units_writer import read_speech_units
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from storage.webdataset_writer import WebDatasetWriter
from tasks.jobs import ShardJob, ShardOutcome, claimed

#: xz over gzip: 18 % smaller on the sample data (it models repeats and tar headers across the whole shard).
TRAINING_COMPRESSION = "xz"


@dataclass(frozen=True)
class TrainingSources:
    """The store versions a training-shards version joins (all of one dataset)."""

    manifests: str
    image_units: str
    speech_units: str
    image_codebook: str
    speech_codebook: str


def training_sample(grid: np.ndarray, units: np.ndarray, text: str, image_id: str, split: str) -> dict[str, Any]:
    """The fields of one training sample: image units, deduplicated speech units, text, image id and split."""
    return {
        "image.npy": grid,
        "units.npy": dedup(units)[0],
        "txt": text,
        "json": {"image_id": image_id, "split": split, "frames": int(units.size)},
    }


#: One image-units shard as read: the row of each stored image, the units grid, the rejections.
_ImageShard = tuple[dict[str, int], np.ndarray, dict[str, str]]

#: Image-units shards this process decoded, newest last (at most ``IMAGE_SHARDS_KEPT``, ~2 MiB each). A speech
#: shard's utterances belong to images spread over every image shard of their split (plans order utterances by
#: id), so without it each of COCO's 600 speech shards would read and decode up to 81 image shards again.
IMAGE_SHARDS_KEPT = 128
_IMAGE_SHARDS: KeyedCache[tuple[str, str, str, str], _ImageShard] = KeyedCache(IMAGE_SHARDS_KEPT)


#: What build-training-shards is named in the lineage refusals of its inputs.
_READER = REBUILT_BY[TRAINING_SHARDS]


def training_jobs(manifests: StoreVersion, jobs: list[ShardJob], sources: TrainingSources) -> list[ShardJob]:
    """The planned speech shards as training-shard jobs: each with the unit shards it reads, in its fingerprint.

    Args:
        manifests: The manifests the jobs were planned from (the image plan and which image each utterance shows).
        jobs: The speech plan's jobs (``flows.sharded.manifest_jobs``).
        sources: The unit versions joined.
    """
    image_plan = {shard.shard_id: shard.fingerprint for shard in planned_shards(manifests, "image")}
    reads = image_shards_by_speech_shard(manifests)
    out = []
    for job in jobs:
        inputs = (
            InputShard(SPEECH_UNITS, sources.speech_units, job.shard_id, job.input_fingerprint),
            *(InputShard(IMAGE_UNITS, sources.image_units, s, image_plan[s]) for s in reads.get(job.shard_id, ())),
        )
        out.append(replace(job, input_fingerprint=lineage_fingerprint(job.input_fingerprint, inputs), inputs=inputs))
    return out


def _image_shard(images: StoreVersion, expected: InputShard) -> tuple[CommitMarker, _ImageShard]:
    """The checked marker of one image-units shard; the row of each stored image, its units and rejections.

    Kept by the marker it was read under: a shard rebuilt since (new inputs, or after ``im2sp verify``) is read
    again.

    Raises:
        StaleInputError: The shard is not committed for the image plan's fingerprint.
    """
    marker = checked_input(images.store, images.dataset, expected, _READER)
    shard = expected.shard_id
    key = (images.store.url_of(images.prefix), shard, marker.input_fingerprint, marker.committed_at)

    def decoded() -> _ImageShard:
        stored_keys, grid = read_units(images, shard)
        return {k: i for i, k in enumerate(stored_keys)}, grid, {r.key: r.reason for r in marker.rejected}

    return marker, _IMAGE_SHARDS.get(key, decoded)


def build_training_shard(store: Store, job: ShardJob, version_id: str, sources: TrainingSources) -> ShardOutcome:
    """Write one compressed WebDataset shard of utterances unless it is committed for the same inputs."""
    version = StoreVersion(store, job.dataset, TRAINING_SHARDS, version_id)
    with claimed(version, job) as skipped:
        if skipped is not None:
            return skipped
        manifests = StoreVersion(store, job.dataset, MANIFESTS, sources.manifests)
        utterances = ok_rows_for(manifests, "utterances", ["image_id", "split", "text"], (k for k, _, _ in job.items))
        image_ids = (str(row["image_id"]) for row in utterances.values())
        image_shards = {
            key: row["shard"] for key, row in ok_rows_for(manifests, "images", ["shard"], image_ids).items()
        }
        expected = {(i.kind, i.shard_id): i for i in job.inputs}
        read: dict[InputShard, CommitMarker] = {}
        speech = StoreVersion(store, job.dataset, SPEECH_UNITS, sources.speech_units)
        speech_input = _planned(expected, SPEECH_UNITS, job.shard_id)
        speech_marker = read[speech_input] = checked_input(store, job.dataset, speech_input, _READER)
        units = read_speech_units(speech, job.shard_id)
        speech_rejected = {r.key: r.reason for r in speech_marker.rejected}
        images = StoreVersion(store, job.dataset, IMAGE_UNITS, sources.image_units)
        loaded: dict[str, _ImageShard] = {}
        sidecar = {"dataset": job.dataset, "shard": job.shard_id, **vars(sources)}
        keys = sorted((key for key, _, _ in job.items), key=lambda k: (str(utterances.get(k, {}).get("image_id")), k))
        with WebDatasetWriter(
            version,
            job.shard_id,
            input_fingerprint=job.input_fingerprint,
            model_fingerprint=f"{sources.image_codebook}+{sources.speech_codebook}",
            compression=TRAINING_COMPRESSION,
            sidecar=sidecar,
        ) as writer:
            for key in keys:
                row = utterances.get(key)
                if key not in units:
                    reason = speech_rejected.get(key, "not in the speech-units shard")
                    writer.reject(key, f"no speech units: {reason}")
                    continue
                if row is None:
                    writer.reject(key, "not an ok utterance in the manifests")
                    continue
                image_id = str(row["image_id"])
                shard = image_shards.get(image_id)
                if shard is None:
                    writer.reject(key, f"image {image_id} is not an ok image in the manifests")
                    continue
                if shard not in loaded:
                    image_input = _planned(expected, IMAGE_UNITS, shard)
                    read[image_input], loaded[shard] = _image_shard(images, image_input)
                rows, grid, image_rejected = loaded[shard]
                if image_id not in rows:
                    reason = image_rejected.get(image_id, f"not in image-units shard {shard}")
                    writer.reject(key, f"no image units for image {image_id}: {reason}")
                    continue
                full, _, _ = units[key]
                text = str(row["text"] or "")
                writer.write(key, training_sample(grid[rows[image_id]], full, text, image_id, row["split"]))
            unchanged_since(store, job.dataset, read, _READER)  # an input rebuilt meanwhile: abort, commit nothing
        return ShardOutcome.of(version, job, built=True)


def _planned(expected: dict[tuple[str, str], InputShard], kind: str, shard_id: str) -> InputShard:
    """The job's lineage entry for an input shard it reads.

    Raises:
        StaleInputError: The job was planned from other manifests than it reads (its lineage does not name it).
    """
    found = expected.get((kind, shard_id))
    if found is None:
        raise StaleInputError(
            f"{kind} shard {shard_id} is not in this training shard's planned inputs; rerun {_READER}"
        )
    return found


@task(name="training-shard", task_run_name="training-{job.dataset}-{job.shard_id}")
def build_training_shard_task(
    store: StoreRef, job: ShardJob, version_id: str, sources: TrainingSources
) -> ShardOutcome:
    """Prefect task around :func:`build_training_shard`."""
    return build_training_shard(store.open(), job, version_id, sources)
