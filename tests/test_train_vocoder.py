"""train-vocoder: the current speech codebook's vocoder, stored, resumable, found by codebook, checked by lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flows.config import PipelineConfig
from storage.errors import StaleInputError
from storage.kinds import SHARED, SPEECH_UNITS, VOCODERS
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tests.tiny_datasets import TINY_HIFIGAN, coco_entry, tiny_config, write_coco

ENTRIES = [coco_entry(n, "train", [f"Caption {n}.", f"Another {n}."]) for n in range(1, 5)] + [
    coco_entry(9, "test", ["A test caption."])
]


def _units(root: Path, **sections: dict[str, Any]) -> PipelineConfig:
    from flows.build_manifests import build_manifests_flow
    from flows.extract_speech_features import extract_speech_features_flow
    from flows.learn_speech_codebook import learn_speech_codebook_flow
    from flows.unitize_speech import unitize_speech_flow

    write_coco(root / "coco", ENTRIES)
    config = tiny_config(root, sections, shard_size=2)
    build_manifests_flow(config)
    extract_speech_features_flow(config)
    learn_speech_codebook_flow(config)
    unitize_speech_flow(config)
    return config


def _files(store: Store) -> dict[str, tuple[int, int]]:
    root = Path(store.path(""))
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_train_vocoder_stores_a_vocoder_for_the_codebook_and_a_rerun_writes_nothing(
    tmp_path: Path, prefect_harness: None
) -> None:
    from flows.report import measure_storage
    from flows.train_vocoder import train_vocoder_flow
    from im2sp_models.vocoders import VOCODERS as REGISTRY
    from storage.reader import verified_local_copy
    from storage.verify import verify_store
    from storage.vocoder_store import current_vocoder
    from tasks.speech_codebook import current_speech_codebook

    config = _units(tmp_path)
    store = config.store.open()
    result = train_vocoder_flow(config)
    assert result.trained and result.steps == 4 and result.utterances == 8 and not result.rejected
    codebook = current_speech_codebook(store)
    assert codebook is not None and result.codebook_id == codebook[0]
    version = current_vocoder(store, codebook[0])
    assert version is not None and version.version == result.version
    assert version.marker_ids() == ["all"]  # the checkpoints went once the vocoder was finished
    made = version.info()["produced_by"]
    assert made["codebook"] == codebook[0] and made["clusters"] == 4 and made["kind"] == "unit-mel"
    vocoder: Any = REGISTRY.load("unit-mel", verified_local_copy(version, "all"), device="cpu")
    assert vocoder.codebook == codebook[0]
    wave = vocoder.synthesize(np.array([0, 1, 2, 3, 3, 2], dtype=np.int64), deduplicated=False)
    assert wave.dtype == np.float32 and wave.size > 0
    assert list(store.walk_files(f"reports/train-vocoder/{version.version}"))  # a WAV to listen to
    entries = [e for e in measure_storage(config).entries if e.representation == "vocoder"]
    assert [(e.version, e.codebook, e.items) for e in entries] == [(version.version, codebook[0], 4)]
    assert verify_store(store, ["coco"]).damaged == ()

    before = _files(store)
    again = train_vocoder_flow(config)
    assert not again.trained and again.version == result.version
    assert _files(store) == before


def test_a_killed_vocoder_run_resumes_to_the_uninterrupted_vocoder(tmp_path: Path, prefect_harness: None) -> None:
    from flows.train_vocoder import vocoder_plan
    from tasks.vocoder_training import train_vocoder

    config = _units(tmp_path / "a")
    store = config.store.open()
    plan = vocoder_plan(config)
    whole = train_vocoder(store, plan)

    killed = _units(tmp_path / "b")
    killed_store = killed.store.open()
    entry: Any = __import__("im2sp_models.unit_mel", fromlist=["UnitMelTrainer"]).UnitMelTrainer
    step = entry.train_step

    def dies_at_step_three(self: Any, batch: Any) -> Any:
        if self.step == 3:
            raise KeyboardInterrupt  # killed after the checkpoint of step 2
        return step(self, batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(entry, "train_step", dies_at_step_three)
        with pytest.raises(KeyboardInterrupt):
            train_vocoder(killed_store, vocoder_plan(killed))
    version = StoreVersion(killed_store, SHARED, VOCODERS, plan.version_id)
    assert version.marker_ids() == ["step-00000002"]
    resumed = train_vocoder(killed_store, vocoder_plan(killed))
    assert resumed.resumed_from == 2 and resumed.version == whole.version
    weights = [
        StoreVersion(s, SHARED, VOCODERS, plan.version_id).shard_key("all") + "/model.safetensors"
        for s in (store, killed_store)
    ]
    assert store.read_bytes(weights[0]) == killed_store.read_bytes(weights[1])


def test_train_vocoder_refuses_units_of_another_codebook_or_plan(tmp_path: Path, prefect_harness: None) -> None:
    from flows.learn_speech_codebook import learn_speech_codebook_flow
    from flows.train_vocoder import train_vocoder_flow

    config = _units(tmp_path)
    store = config.store.open()
    units = current_version(store, "coco", SPEECH_UNITS)
    assert units is not None
    marker = store.read_json(units.marker_key("train-00001"))
    marker["input_fingerprint"] = "another-plan"
    store.write_json(units.marker_key("train-00001"), marker)
    with pytest.raises(
        StaleInputError, match=r"speech-units shard train-00001 .*rerun unitize-speech, then train-vocoder"
    ):
        train_vocoder_flow(config)

    learn_speech_codebook_flow(tiny_config(tmp_path, {"speech": {"seed": 7}}, shard_size=2))
    with pytest.raises(StaleInputError, match=r"current speech units are of codebook .*rerun unitize-speech"):
        train_vocoder_flow(config)


def test_train_vocoder_trains_unit_hifigan_in_speech_resynthesis_layout(tmp_path: Path, prefect_harness: None) -> None:
    import torch

    from flows.train_vocoder import train_vocoder_flow
    from im2sp_models.vocoders import load_vocoder
    from storage.reader import verified_local_copy

    section = {"kind": "unit-hifigan", "settings": TINY_HIFIGAN, "steps": 2, "checkpoint_every": 1}
    config = _units(tmp_path, vocoder_training=section)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_vocoder_flow(config)
    finally:
        torch.set_num_threads(threads)
    store = config.store.open()
    assert result.trained and result.kind == "unit-hifigan" and result.steps == 2 and result.utterances == 8
    version = StoreVersion(store, SHARED, VOCODERS, result.version)
    assert version.marker_ids() == ["all"]
    folder = verified_local_copy(version, "all")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "g_00000002"]
    vocoder: Any = load_vocoder("unit-hifigan", folder, device="cpu")
    assert vocoder.has_duration_predictor and vocoder.hop == 320
    assert vocoder.synthesize(np.array([0, 1, 2, 3]), deduplicated=False).shape == (4 * 320,)
    assert list(store.walk_files(f"reports/train-vocoder/{version.version}"))  # the preview's WAV


def test_verify_names_a_damaged_vocoder_pointer(store: Store) -> None:
    from storage.verify import verify_store
    from storage.vocoder_store import pointer_key

    store.write_bytes(pointer_key("abc"), b"{not json")
    (damage,) = verify_store(store, []).damaged
    assert damage.kind == VOCODERS and damage.is_control and damage.rebuilt_by == "train-vocoder"
