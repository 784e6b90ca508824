from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from storage.kinds import IMAGE_UNITS, TRAINING_SHARDS
from storage.reader import iter_webdataset, read_units
from storage.speech_units_writer import read_speech_units
from storage.versions import current_version
from tests.tiny_datasets import coco_entry, tiny_config, write_coco


def test_training_shards_join_units_and_text_and_read_with_webdataset_and_datasets(
    tmp_path: Path, prefect_harness: None
) -> None:
    import webdataset
    from datasets import load_dataset

    from flows.build_training_shards import build_training_shards_flow
    from flows.pipeline import pipeline_flow

    entries = [
        coco_entry(1, "train", ["A dog runs.", "A brown dog."]),
        coco_entry(2, "train", ["A cat sleeps."]),
        coco_entry(3, "test", ["Blue sky.", "Clouds."]),
    ]
    write_coco(tmp_path / "coco", entries)
    (tmp_path / "coco" / "COCO_2014" / "train2014" / entries[1]["filename"]).write_bytes(b"not a jpeg")
    config = tiny_config(tmp_path, shard_size=8)
    (result,) = pipeline_flow(config)["build-training-shards"]
    assert (result.stored, result.rejected) == (4, 1)  # 5 utterances: the cat's image is not a JPEG
    store = config.store.open()
    version = current_version(store, "coco", TRAINING_SHARDS)
    assert version is not None and version.version == result.version
    markers = version.committed()
    (reason,) = [r.reason for m in markers.values() for r in m.rejected]
    assert "is not an ok image in the manifests" in reason

    images = current_version(store, "coco", IMAGE_UNITS)
    assert images is not None
    grids = {k: g for shard in images.committed() for k, g in zip(*read_units(images, shard), strict=True)}
    speech = current_version(store, "coco", "speech-units")
    assert speech is not None
    dedup = {k: v[1] for shard in speech.committed() for k, v in read_speech_units(speech, shard).items()}
    urls = []
    for shard_id, marker in sorted(markers.items()):
        meta = json.loads(store.read_bytes(f"{version.shard_key(shard_id)}/meta.json"))
        assert meta["image_units"] == images.version and meta["speech_units"] == speech.version
        urls.append(store.path(f"{version.shard_key(shard_id)}/{marker.extra['tar']}"))
        for key, fields in iter_webdataset(version, shard_id):
            assert set(fields) == {"image.npy", "units.npy", "txt", "json"} and key in dedup
    samples: list[dict[str, Any]] = list(webdataset.WebDataset(urls, shardshuffle=False).decode())
    assert len(samples) == 4 and all(s["__key__"] in dedup for s in samples)
    for sample in samples:
        image_id = sample["json"]["image_id"]
        np.testing.assert_array_equal(sample["image.npy"], grids[image_id])
        np.testing.assert_array_equal(sample["units.npy"], dedup[sample["__key__"]])
        assert sample["txt"] == sample["txt"].upper() and sample["json"]["split"] in ("train", "test")
    ids = [s["json"]["image_id"] for s in samples if s["json"]["split"] == "train"]
    assert ids == sorted(ids)  # an image's utterances sit together
    rows = load_dataset("webdataset", data_files={"train": urls}, split="train")
    assert sorted(rows["__key__"]) == sorted(s["__key__"] for s in samples)
    np.testing.assert_array_equal(np.asarray(rows[0]["units.npy"]), dedup[rows[0]["__key__"]])
    again = build_training_shards_flow(config)[0]
    assert (again.shards_built, again.shards_skipped) == (0, result.shards_built)
