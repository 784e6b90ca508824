"""Corruption: flipped bytes in committed shards are caught on read and by ``im2sp verify``.

A rerun then rebuilds exactly the damaged shards, back to the bytes of the undamaged store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from storage.errors import CorruptShardError
from storage.kinds import IMAGE_UNITS, TRAINING_SHARDS
from storage.reader import iter_webdataset, read_units
from storage.versions import StoreVersion, current_version
from tests.store_compare import differences, snapshot
from tests.tiny_datasets import coco_entry, tiny_config, write_coco


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x40
    path.write_bytes(bytes(data))


def _shard_file(version: StoreVersion, shard_id: str, suffix: str) -> Path:
    folder = Path(version.store.path(version.shard_key(shard_id)))
    return max(
        (p for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffix)), key=lambda p: p.stat().st_size
    )


def test_flipped_bytes_are_caught_listed_and_rebuilt(tmp_path: Path, prefect_harness: None) -> None:
    from flows.build_training_shards import build_training_shards_flow
    from flows.pipeline import pipeline_flow
    from flows.tokenize_images import tokenize_images_flow

    entries = [coco_entry(i, ("train", "val", "test")[i % 3], [f"Caption {i}.", f"Other {i}."]) for i in range(1, 7)]
    write_coco(tmp_path / "coco", entries)
    config = tiny_config(tmp_path, {"training": {"steps": 1}}, shard_size=2)
    pipeline_flow(config)
    store = config.store.open()
    clean = snapshot(tmp_path / "store")
    units, shards = current_version(store, "coco", IMAGE_UNITS), current_version(store, "coco", TRAINING_SHARDS)
    assert units is not None and shards is not None
    unit_shard, tar_shard = sorted(units.committed())[0], sorted(shards.committed())[-1]
    _flip(_shard_file(units, unit_shard, ""), 100)  # a Zarr chunk (the largest file of the shard)
    _flip(_shard_file(shards, tar_shard, ".tar.xz"), 200)  # a WebDataset tar
    # A second image shard loses its marker's integrity: the JSON itself is damaged.
    marker = Path(store.path(units.marker_key(sorted(units.committed())[1])))
    second = sorted(units.committed())[1]
    marker.write_text(marker.read_text()[:-20])

    with pytest.raises(CorruptShardError, match=f"{unit_shard}.*sha256 does not match"):
        read_units(units, unit_shard)
    with pytest.raises(CorruptShardError, match=f"{tar_shard}.*sha256 does not match"):
        list(iter_webdataset(shards, tar_shard))

    config_file = tmp_path / "pipeline.yaml"
    missing = CliRunner().invoke(app, ["verify", "--config", str(config_file)])
    assert missing.exit_code == 2 and "error" in missing.output  # no such config yet: a clear error
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    verified = CliRunner().invoke(app, ["verify", "--config", str(config_file)], terminal_width=250)
    assert verified.exit_code == 1, verified.output
    assert "3 damaged shard(s)" in verified.output
    for shard in (unit_shard, tar_shard, second):
        assert shard in verified.output
    assert "tokenize-images" in verified.output and "build-training-shards" in verified.output

    (image_result,) = tokenize_images_flow(config)
    (training_result,) = build_training_shards_flow(config)
    assert (image_result.shards_built, training_result.shards_built) == (2, 1)  # exactly the damaged ones
    assert image_result.shards_skipped == len(units.committed()) - 2
    again = CliRunner().invoke(app, ["verify", "--config", str(config_file)])
    assert again.exit_code == 0 and "no damaged shard" in again.output, again.output
    assert read_units(units, unit_shard)[1].shape[1:] == (32, 32)
    after = snapshot(tmp_path / "store")
    # Everything is back to the undamaged bytes (reports and evaluation outputs aside: made by other flows).
    assert [k for k in differences(clean, after) if not k.startswith("reports/")] == []

    # Control files: a truncated pointer, a damaged version.json and a pointer naming a shard that has no marker.
    from storage.errors import DamagedPointerError
    from storage.kinds import MANIFESTS, SPEECH_UNITS
    from storage.verify import verify_store

    manifests, speech = current_version(store, "coco", MANIFESTS), current_version(store, "coco", SPEECH_UNITS)
    assert manifests is not None and speech is not None
    pointer = Path(store.path("coco/image-units/current.json"))
    pointer.write_text(pointer.read_text()[:25])
    Path(store.path(f"{manifests.prefix}/version.json")).write_text('{"format_version": 2, "data')
    speech_pointer = Path(store.path("coco/speech-units/current.json"))
    lost = sorted(speech.committed())[0]
    Path(store.path(speech.marker_key(lost))).unlink()
    verified = CliRunner().invoke(app, ["verify", "--config", str(config_file)], terminal_width=250)
    assert verified.exit_code == 1, verified.output
    assert "0 damaged shard(s), 3 damaged control file(s)" in verified.output, verified.output
    found = {(d.kind, d.shard_id): d.reason for d in verify_store(store, ["coco"], flag=False).damaged}
    assert set(found) == {(IMAGE_UNITS, "current.json"), (MANIFESTS, "version.json"), (SPEECH_UNITS, "current.json")}
    assert "not JSON" in found[IMAGE_UNITS, "current.json"] and lost in found[SPEECH_UNITS, "current.json"]
    with pytest.raises(DamagedPointerError, match=r"image-units/current\.json is damaged.*rerun tokenize-images"):
        build_training_shards_flow(config)
    # The storage report measures what it can and lists the rest (exit 1), instead of stopping at the first.
    # The manifests' damaged version.json holds provenance only: their sizes are still measured.
    reported = CliRunner().invoke(app, ["report", "storage", "--config", str(config_file), "--json"])
    assert reported.exit_code == 1 and "2 store(s) could not be measured" in reported.stderr, reported.output
    document = json.loads(reported.stdout)
    unmeasured = {(u["kind"], u["rerun"]): u["problem"] for u in document["unmeasured"]}
    assert set(unmeasured) == {(IMAGE_UNITS, "tokenize-images"), (SPEECH_UNITS, "unitize-speech")}, unmeasured
    assert "not JSON" in unmeasured[IMAGE_UNITS, "tokenize-images"]
    assert f"without a commit marker ({lost})" in unmeasured[SPEECH_UNITS, "unitize-speech"]
    measured = {(e["dataset"], e["modality"], e["representation"]): e["items"] for e in document["entries"]}
    assert measured == {
        ("coco", "image", "source"): 6,
        ("coco", "speech", "source"): 12,
        ("coco", "speech", "features"): 12,
        ("coco", "image+speech", "training-shards"): 12,
        ("_shared", "image", "codebook"): config.image_tokenizer.codebook_size,
        ("_shared", "speech", "codebook"): config.speech.clusters,
        ("_shared", "model", "checkpoints"): 1,
        ("_shared", "speech", "vocoder"): config.speech.clusters,
    }, measured
    assert speech_pointer.exists()

    from flows.build_manifests import build_manifests_flow
    from flows.unitize_speech import unitize_speech_flow

    build_manifests_flow(config)  # rewrites version.json, skips the committed manifests
    tokenize_images_flow(config)  # publishes: rewrites the pointer
    unitize_speech_flow(config)  # rebuilds the shard whose marker was lost, publishes
    again = CliRunner().invoke(app, ["verify", "--config", str(config_file)])
    assert again.exit_code == 0 and "no damaged shard" in again.output, again.output
    restored = current_version(store, "coco", IMAGE_UNITS)
    assert restored is not None and restored.version == units.version
    assert manifests.info()["dataset"] == "coco"

    # Models are checked before use: a flipped byte in a codebook or a checkpoint would silently change every
    # unit (or every generated caption), so each consumer refuses it, naming the file.
    import tasks.speech_units
    from flows.evaluate_im2sp import _model_folder
    from storage.kinds import IMAGE_CODEBOOK, SHARED, SPEECH_CODEBOOK, TRAIN_RUNS
    from tasks.image_codebook import current_codebook
    from tasks.speech_codebook import current_speech_codebook
    from tasks.train import latest_checkpoint

    image_codebook = current_version(store, SHARED, IMAGE_CODEBOOK)
    speech_codebook = current_version(store, SHARED, SPEECH_CODEBOOK)
    (run,) = [StoreVersion(store, SHARED, TRAIN_RUNS, name) for name in store.list_dirs(f"{SHARED}/{TRAIN_RUNS}")]
    checkpoint = latest_checkpoint(run)
    assert image_codebook is not None and speech_codebook is not None and checkpoint is not None
    centroids, units_codebook = _shard_file(speech_codebook, "all", "centroids.npy"), speech_codebook.version
    damaged: list[tuple[Path, Callable[[], object]]] = [
        (_shard_file(image_codebook, "all", "codebook.npy"), lambda: current_codebook(store)),
        (centroids, lambda: current_speech_codebook(store)),
        (centroids, lambda: tasks.speech_units.assigner(store, units_codebook)),
        (_shard_file(run, checkpoint, ".safetensors"), lambda: _model_folder(config)),
    ]
    tasks.speech_units.ASSIGNERS.clear()  # the pipeline above built its index in this process
    for path, use in damaged:
        intact = path.read_bytes()
        _flip(path, len(intact) - 3)
        with pytest.raises(CorruptShardError, match=f"{path.name}: sha256 does not match"):
            use()
        path.write_bytes(intact)
        use()  # intact again: accepted
    # Training refuses a damaged codebook too (it used to take any error there as "no codebook" and train on).
    from flows.train_im2sp import train_im2sp_flow

    codebook_file = _shard_file(image_codebook, "all", "codebook.npy")
    intact = codebook_file.read_bytes()
    _flip(codebook_file, 10)
    with pytest.raises(CorruptShardError, match=r"codebook\.npy: sha256 does not match"):
        train_im2sp_flow(config)
    codebook_file.write_bytes(intact)

    # A damaged checkpoint, once flagged by verify, is passed over: the rerun of train-im2sp writes it again.
    _flip(_shard_file(run, checkpoint, ".safetensors"), 50)
    flagged = CliRunner().invoke(app, ["verify", "--config", str(config_file)], terminal_width=250)
    assert flagged.exit_code == 1 and "rerun train-im2sp" in flagged.output, flagged.output
    assert store.exists(run.damaged_key(checkpoint))
    assert latest_checkpoint(run) != checkpoint
    train_im2sp_flow(config)
    assert latest_checkpoint(run) == checkpoint
    clean_again = CliRunner().invoke(app, ["verify", "--config", str(config_file)])
    assert clean_again.exit_code == 0, clean_again.output
