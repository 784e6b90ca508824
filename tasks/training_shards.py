"""One training shard: image units + deduplicated speech units + caption text per utterance (function + task).

A training shard covers one planned speech shard. Each stored sample is one utterance, keyed by the utterance
id, with ``image.npy`` (the image's 32 × 32 units), ``units.npy`` (its deduplicated speech units), ``txt``
(the caption text) and ``json`` (image id, split, full-rate frames). Samples are ordered by image id, so the
five or so utterances of an image sit together and xz stores the repeated image units almost for free.
An utterance whose speech units or image units were not stored is rejected with the upstream reason.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from prefect import task

from storage.dedup import dedup
from storage.kinds import IMAGE_UNITS, MANIFESTS, SPEECH_UNITS, TRAINING_SHARDS
from storage.manifests import ok_rows_for
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


#: Image-units shards this process decoded, newest last (at most ``IMAGE_SHARDS_KEPT``, ~2 MiB each). A speech
#: shard's utterances belong to images spread over every image shard of their split (plans order utterances by
#: id), so without it each of COCO's 600 speech shards would read and decode up to 81 image shards again.
_IMAGE_SHARDS: OrderedDict[tuple[str, str, str, str], tuple[dict[str, int], np.ndarray, dict[str, str]]] = OrderedDict()
_IMAGE_SHARDS_LOCK = threading.Lock()
IMAGE_SHARDS_KEPT = 128


def _image_shard(images: StoreVersion, shard: str) -> tuple[dict[str, int], np.ndarray, dict[str, str]]:
    """Row of each stored image, the units grid and the rejections of one committed image-units shard.

    Kept by the marker it was read under: a shard rebuilt since (new inputs, or after ``im2sp verify``) is read
    again.
    """
    marker = images.marker(shard)
    if marker is None:  # not committed (yet): nothing to keep
        return {}, np.zeros(0), {}
    key = (images.store.url_of(images.prefix), shard, marker.input_fingerprint, marker.committed_at)
    with _IMAGE_SHARDS_LOCK:
        if key in _IMAGE_SHARDS:
            _IMAGE_SHARDS.move_to_end(key)
            return _IMAGE_SHARDS[key]
    stored_keys, grid = read_units(images, shard)
    found = ({k: i for i, k in enumerate(stored_keys)}, grid, {r.key: r.reason for r in marker.rejected})
    with _IMAGE_SHARDS_LOCK:
        _IMAGE_SHARDS[key] = found
        while len(_IMAGE_SHARDS) > IMAGE_SHARDS_KEPT:
            _IMAGE_SHARDS.popitem(last=False)
    return found


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
        speech = StoreVersion(store, job.dataset, SPEECH_UNITS, sources.speech_units)
        speech_marker = speech.require_marker(job.shard_id)
        units = read_speech_units(speech, job.shard_id)
        speech_rejected = {r.key: r.reason for r in speech_marker.rejected}
        images = StoreVersion(store, job.dataset, IMAGE_UNITS, sources.image_units)
        loaded: dict[str, tuple[dict[str, int], np.ndarray, dict[str, str]]] = {}
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
                    loaded[shard] = _image_shard(images, shard)
                rows, grid, image_rejected = loaded[shard]
                if image_id not in rows:
                    reason = image_rejected.get(image_id, f"not in image-units shard {shard}")
                    writer.reject(key, f"no image units for image {image_id}: {reason}")
                    continue
                full, _, _ = units[key]
                text = str(row["text"] or "")
                writer.write(key, training_sample(grid[rows[image_id]], full, text, image_id, row["split"]))
        return ShardOutcome.of(version, job, built=True)


@task(name="training-shard", task_run_name="training-{job.dataset}-{job.shard_id}")
def build_training_shard_task(
    store: StoreRef, job: ShardJob, version_id: str, sources: TrainingSources
) -> ShardOutcome:
    """Prefect task around :func:`build_training_shard`."""
    return build_training_shard(store.open(), job, version_id, sources)
