"""Lineage: a step trusts an input shard by its commit marker's fingerprints, never by its name or by "current".

The scenario of docs/RELIABILITY.md "Lineage": one image deleted, build-manifests, then build-training-shards
before the unit stores caught up. It must refuse (one line naming the flow to rerun), and after the catch-up the
training shards must hold exactly what a fresh build of the same data holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.config import PipelineConfig
from storage.errors import StaleInputError
from storage.kinds import IMAGE_UNITS, SPEECH_UNITS, TRAINING_SHARDS
from storage.reader import iter_webdataset
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tests.tiny_datasets import coco_entry, tiny_config, tiny_document, write_coco

#: Nine training images with two captions each and two test images; shards of two items, so deleting the first
#: training image moves every later image into another image shard.
ENTRIES = [coco_entry(n, "train", [f"Train image {n}.", f"Another caption {n}."]) for n in range(1, 10)] + [
    coco_entry(n, "test", [f"Test image {n}."]) for n in (20, 21)
]


def _build_units(config: PipelineConfig, *, learn: bool = True) -> None:
    from flows.build_manifests import build_manifests_flow
    from flows.extract_speech_features import extract_speech_features_flow
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.learn_speech_codebook import learn_speech_codebook_flow
    from flows.tokenize_images import tokenize_images_flow
    from flows.unitize_speech import unitize_speech_flow

    build_manifests_flow(config)
    if learn:
        learn_image_codebook_flow(config)
    tokenize_images_flow(config)
    extract_speech_features_flow(config)
    if learn:
        learn_speech_codebook_flow(config)
    unitize_speech_flow(config)


def _im2sp_run(root: Path, flow: str) -> subprocess.CompletedProcess[str]:
    """``im2sp run FLOW`` on the tiny config of ``root`` in a subprocess (its own ephemeral Prefect server)."""
    (root / "pipeline.yaml").write_text(yaml.safe_dump(tiny_document(shard_size=2)))
    env = {k: v for k, v in os.environ.items() if k not in ("IM2SP_DEBUG", "PREFECT_API_URL")}
    env["PREFECT_HOME"] = str(root / "prefect-home")
    command = [str(Path(sys.executable).parent / "im2sp"), "run", flow, "--config", "pipeline.yaml"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)


def _samples(config: PipelineConfig) -> dict[str, dict[str, bytes]]:
    store = config.store.open()
    version = current_version(store, "coco", TRAINING_SHARDS)
    assert version is not None
    return {key: fields for shard in version.committed() for key, fields in iter_webdataset(version, shard)}


def _counts(results: list[Any]) -> tuple[int, int]:
    return sum(r.stored for r in results), sum(r.rejected for r in results)


def test_training_shards_built_before_the_units_caught_up_refuse_then_match_a_fresh_build(
    tmp_path: Path, prefect_harness: None
) -> None:
    from flows.build_manifests import build_manifests_flow
    from flows.build_training_shards import build_training_shards_flow
    from flows.tokenize_images import tokenize_images_flow
    from flows.unitize_speech import unitize_speech_flow

    write_coco(tmp_path / "coco", ENTRIES)
    config = tiny_config(tmp_path, shard_size=2)
    _build_units(config)
    before = _counts(build_training_shards_flow(config))
    assert before == (20, 0)

    (tmp_path / "coco" / "COCO_2014" / "train2014" / ENTRIES[0]["filename"]).unlink()
    build_manifests_flow(config)
    store = config.store.open()
    published = current_version(store, "coco", TRAINING_SHARDS)
    done = _im2sp_run(tmp_path, "build-training-shards")  # as a user runs it: one line, exit 1
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if "error:" in line.lower()]
    assert done.returncode == 1 and "Traceback" not in output, output
    assert len(errors) == 1 and "rerun tokenize-images, then build-training-shards" in errors[0], output
    with pytest.raises(StaleInputError, match="rerun tokenize-images"):
        build_training_shards_flow(config)
    after = current_version(store, "coco", TRAINING_SHARDS)
    assert published is not None and after is not None and after.version == published.version  # nothing published

    tokenize_images_flow(config)
    unitize_speech_flow(config)
    caught_up = build_training_shards_flow(config)
    assert _counts(caught_up) == (18, 2)  # the deleted image's two utterances are rejected, with a reason
    samples = _samples(config)

    fresh_root = tmp_path / "fresh"
    shutil.copytree(tmp_path / "coco", fresh_root / "coco")
    fresh = tiny_config(fresh_root, shard_size=2)
    shutil.copytree(store.path("_shared"), fresh.store.open().path("_shared"))
    _build_units(fresh, learn=False)  # the same codebooks: the catch-up learned none either
    assert _counts(build_training_shards_flow(fresh)) == (18, 2)
    assert samples == _samples(fresh)


def test_a_missing_image_units_marker_is_an_error_not_an_empty_shard(tmp_path: Path, prefect_harness: None) -> None:
    from flows.build_training_shards import build_training_shards_flow

    write_coco(tmp_path / "coco", ENTRIES[:4])
    config = tiny_config(tmp_path, shard_size=2)
    _build_units(config)
    store = config.store.open()
    images = current_version(store, "coco", IMAGE_UNITS)
    assert images is not None
    store.remove(images.marker_key("train-00001"))
    with pytest.raises(StaleInputError, match=r"image-units shard train-00001 .*not committed.*rerun tokenize-images"):
        build_training_shards_flow(config)


def test_a_speech_units_shard_of_another_plan_is_refused(tmp_path: Path, prefect_harness: None) -> None:
    from flows.build_training_shards import build_training_shards_flow

    write_coco(tmp_path / "coco", ENTRIES[:4])
    config = tiny_config(tmp_path, shard_size=2)
    _build_units(config)
    (result,) = build_training_shards_flow(config)
    store = config.store.open()
    speech = current_version(store, "coco", SPEECH_UNITS)
    assert speech is not None
    marker_key = speech.marker_key("train-00000")
    document = store.read_json(marker_key)
    document["input_fingerprint"] = "another-plan"
    store.write_json(marker_key, document)
    version = StoreVersion(store, "coco", TRAINING_SHARDS, result.version)
    store.remove(version.marker_key("train-00000"))
    with pytest.raises(StaleInputError, match=r"speech-units shard train-00000 .*rerun unitize-speech"):
        build_training_shards_flow(config)
    assert version.marker("train-00000") is None  # nothing committed from it


def test_retention_keeps_what_the_current_training_shards_and_trained_runs_name(store: Store) -> None:
    from storage.blob_writer import BlobWriter
    from storage.kinds import SHARED, SPEECH_FEATURES, TRAIN_RUNS
    from storage.lineage import kept_by_downstream
    from storage.versions import apply_retention, list_versions

    def version(kind: str, name: str, day: int, produced_by: dict[str, Any] | None = None) -> StoreVersion:
        made = StoreVersion(store, "coco", kind, name)
        made.ensure_created(produced_by or {})
        document = made.info()
        document["created_at"] = f"2026-11-0{day}T00:00:00+00:00"
        store.write_json(f"{made.prefix}/version.json", document)
        return made

    for day, name in enumerate(("old", "named", "trained", "newer"), start=1):
        version(IMAGE_UNITS, name, day)
    version(IMAGE_UNITS, "current", 5).publish([])
    version(SPEECH_FEATURES, "f1", 1)
    version(SPEECH_UNITS, "s1", 1, {"features": "f1"})
    version(TRAINING_SHARDS, "t-trained", 1, {"image_units": "trained", "speech_units": "s1"})
    version(TRAINING_SHARDS, "t-current", 2, {"image_units": "named", "speech_units": "s1"}).publish([])
    run = StoreVersion(store, SHARED, TRAIN_RUNS, "run1")
    run.ensure_created({"settings": {}, "data": {"versions": {"coco": "t-trained"}, "splits": ["train"]}})
    with BlobWriter(run, "step-00000001", input_fingerprint="in") as writer:
        writer.write("model.safetensors", {"bytes": b"weights"})

    kept = kept_by_downstream(store, "coco")
    assert kept[(IMAGE_UNITS, "named")] == f"named by {TRAINING_SHARDS} t-current (current)"
    assert kept[(TRAINING_SHARDS, "t-trained")] == "a training run was trained on it"
    assert kept[(IMAGE_UNITS, "trained")].startswith(f"named by {TRAINING_SHARDS} t-trained")
    assert kept[(SPEECH_FEATURES, "f1")].startswith(f"named by {SPEECH_UNITS} s1")  # transitively
    read = {v for kind, v in kept if kind == IMAGE_UNITS}
    assert apply_retention(store, "coco", IMAGE_UNITS, keep=1, read_downstream=read) == ["newer", "old"]
    assert {v.version for v in list_versions(store, "coco", IMAGE_UNITS)} == {"current", "named", "trained"}


def test_unitize_speech_refuses_a_missing_features_shard_naming_extract_speech_features(
    tmp_path: Path, prefect_harness: None
) -> None:
    from flows.unitize_speech import unitize_speech_flow
    from storage.kinds import SPEECH_FEATURES

    write_coco(tmp_path / "coco", ENTRIES[:4])
    config = tiny_config(tmp_path, {"speech": {"keep": "all"}}, shard_size=2)
    _build_units(config)
    store = config.store.open()
    features = current_version(store, "coco", SPEECH_FEATURES)
    units = current_version(store, "coco", SPEECH_UNITS)
    assert features is not None and units is not None
    store.remove(features.marker_key("train-00001"))
    store.remove(units.marker_key("train-00001"))
    with pytest.raises(StaleInputError, match=r"speech-features shard train-00001 .*rerun extract-speech-features"):
        unitize_speech_flow(config)
    assert units.marker("train-00001") is None
