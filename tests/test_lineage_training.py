"""Training reads its inputs by lineage: the shards of its splits, the tokenizer that made its units, no more."""

from __future__ import annotations

import shutil
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storage.errors import Im2SpError
from storage.kinds import IMAGE_CODEBOOK, IMAGE_UNITS, SHARED, TRAINING_SHARDS
from storage.reader import verified_local_copy
from storage.store import Store
from storage.versions import StoreVersion, current_version
from storage.webdataset_writer import WebDatasetWriter
from tasks import train as train_module
from tasks.eval_inputs import split_images
from tasks.train import TrainData
from tasks.training_shards import training_sample
from tests.tiny_datasets import coco_entry, tiny_config, write_coco


def _training_shards(store: Store, shards: dict[str, int]) -> StoreVersion:
    """A training-shards version of ``coco`` holding ``shards`` (shard id → samples, split from the id)."""
    version = StoreVersion(store, "coco", TRAINING_SHARDS, "v1")
    version.ensure_created({})
    for shard_id, count in shards.items():
        split = shard_id.rpartition("-")[0]
        with WebDatasetWriter(version, shard_id, input_fingerprint=shard_id) as writer:
            for i in range(count):
                grid = np.full((32, 32), i, np.int64)
                sample = training_sample(grid, np.arange(3) % 4, "text", f"{shard_id}-{i}", split)
                writer.write(f"{shard_id}_{i}", sample)
    return version


def test_shards_of_a_split_named_with_a_hyphen_are_found(store: Store) -> None:
    _training_shards(store, {"test-clean-00000": 2, "test-clean-00001": 1, "test-00000": 1, "train-00000": 1})
    shards = train_module._shards(store, TrainData({"coco": "v1"}, ("test-clean",)))
    assert [(shard, stored) for _, _, shard, stored in shards] == [("test-clean-00000", 2), ("test-clean-00001", 1)]
    images = split_images(store, "coco", "v1", "test-clean")
    assert sorted(images) == ["test-clean-00000-0", "test-clean-00000-1", "test-clean-00001-0"]
    assert list(split_images(store, "coco", "v1", "test")) == ["test-00000-0"]


def test_a_resumed_stream_decodes_only_the_shard_of_its_offset(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _training_shards(store, {f"train-{i:05d}": n for i, n in enumerate([2, 3, 1, 2])})
    data = TrainData({"coco": "v1"})
    whole = [(e, o, s.key) for e, o, s in islice(train_module.stream(store, data, 3, 0, 0), 12)]
    decoded: list[str] = []
    real = train_module._decoded

    def recorded(store: Store, dataset: str, version_id: str, shard_id: str) -> Any:
        decoded.append(shard_id)
        return real(store, dataset, version_id, shard_id)

    monkeypatch.setattr(train_module, "_decoded", recorded)
    epoch, offset, _ = whole[5]  # six of the epoch's eight samples consumed
    resumed = [(e, o, s.key) for e, o, s in islice(train_module.stream(store, data, 3, epoch, offset), 6)]
    assert resumed == whole[6:]
    assert decoded[0] == resumed[0][2].rpartition("_")[0]  # the shard holding sample 7, and none before it
    assert len(decoded) == 1 + len({key.rpartition("_")[0] for _, _, key in resumed[2:]})


def test_datasets_tokenized_by_different_tokenizers_are_refused(store: Store) -> None:
    for dataset, made_by in (("coco", "aaaa"), ("flickr8k", "bbbb")):
        StoreVersion(store, dataset, IMAGE_UNITS, made_by).ensure_created(
            {"tokenizer": "patch-vq", "fingerprint": made_by, "codebook_size": 16}
        )
        joined = {"image_units": made_by, "image_codebook": made_by, "speech_units": "s"}
        StoreVersion(store, dataset, TRAINING_SHARDS, "v1").ensure_created(joined)
    assert train_module.units_tokenizer(store, TrainData({"coco": "v1"})) == ("patch-vq", "aaaa")
    with pytest.raises(Im2SpError, match=r"different tokenizers .*rerun tokenize-images"):
        train_module.units_tokenizer(store, TrainData({"coco": "v1", "flickr8k": "v1"}))


def _build_training_shards(config: Any) -> None:
    from flows.build_manifests import build_manifests_flow
    from flows.build_training_shards import build_training_shards_flow
    from flows.extract_speech_features import extract_speech_features_flow
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.learn_speech_codebook import learn_speech_codebook_flow
    from flows.tokenize_images import tokenize_images_flow
    from flows.unitize_speech import unitize_speech_flow

    build_manifests_flow(config)
    learn_image_codebook_flow(config)
    tokenize_images_flow(config)
    extract_speech_features_flow(config)
    learn_speech_codebook_flow(config)
    unitize_speech_flow(config)
    build_training_shards_flow(config)


def test_unit_embeddings_start_from_the_codebook_that_made_the_units(
    tmp_path: Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.train_im2sp import train_im2sp_flow
    from im2sp_models import train_loop

    write_coco(tmp_path / "coco", [coco_entry(i, "train", [f"Thing {i}."]) for i in (1, 2)])
    _build_training_shards(tiny_config(tmp_path, shard_size=2))  # units of codebook A
    store = Store(str(tmp_path / "store"))
    codebook_a = current_version(store, SHARED, IMAGE_CODEBOOK)
    assert codebook_a is not None
    vectors_a = np.load(verified_local_copy(codebook_a, "all") / "codebook.npy")
    moved = tiny_config(tmp_path, {"image_tokenizer": {"seed": 9}}, shard_size=2)
    codebook_b = learn_image_codebook_flow(moved)  # current moves to B; the training shards still hold A's units
    assert codebook_b.codebook_id != codebook_a.version
    vectors_b = np.load(
        verified_local_copy(StoreVersion(store, SHARED, IMAGE_CODEBOOK, codebook_b.codebook_id), "all") / "codebook.npy"
    )
    assert vectors_b.shape == vectors_a.shape and not np.array_equal(vectors_a, vectors_b)

    seen: list[np.ndarray | None] = []
    real = train_loop.new_model

    def recorded(settings: Any, size: int, speech_units: int, vectors: np.ndarray | None) -> Any:
        seen.append(vectors)
        return real(settings, size, speech_units, vectors)

    monkeypatch.setattr(train_loop, "new_model", recorded)
    train_im2sp_flow(moved)
    assert len(seen) == 1 and seen[0] is not None and np.array_equal(seen[0], vectors_a)

    # A's codebook gone and B's folder configured: B is not what made the units, so training refuses.
    b_folder = tmp_path / "codebook-b"
    shutil.copytree(
        verified_local_copy(StoreVersion(store, SHARED, IMAGE_CODEBOOK, codebook_b.codebook_id), "all"), b_folder
    )
    shutil.rmtree(tmp_path / "store" / SHARED / IMAGE_CODEBOOK / codebook_a.version)
    pinned = tiny_config(tmp_path, {"image_tokenizer": {"checkpoint": str(b_folder)}, "training": {"steps": 3}})
    with pytest.raises(Im2SpError, match=f"{codebook_a.version}.*tokenize-images"):
        train_im2sp_flow(pinned)
    # … and without a configured codebook, the missing one is named (never a silent random start).
    with pytest.raises(Im2SpError, match=f"{codebook_a.version}.*tokenize-images"):
        train_im2sp_flow(tiny_config(tmp_path, {"training": {"steps": 4}}))
    assert len(seen) == 1
