from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from storage.kinds import TRAINING_SHARDS
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tasks.train import TrainData, TrainSettings, Vocabulary, latest_checkpoint, run_id, train
from tests.tiny_datasets import coco_entry, tiny_config, write_coco

SETTINGS: dict[str, Any] = dict(
    batch_size=2,
    grad_accum=2,
    lr=1e-3,
    weight_decay=1e-5,
    warmup_steps=1,
    freeze_image_encoder=False,
    max_units=64,
    seed=3,
    model={
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "vision_config": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2},
    },
    checkpoint_every=2,
    log_every=1,
)


def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_losses(tmp_path: Path, prefect_harness: None) -> None:
    from flows.pipeline import pipeline_flow

    entries = [coco_entry(i, "train", [f"Thing {i}.", f"Other {i}."]) for i in range(1, 4)]
    write_coco(tmp_path / "coco", [*entries, coco_entry(9, "test", ["Test."])])
    config = tiny_config(tmp_path, shard_size=2)
    results = pipeline_flow(config)
    assert results["train-im2sp"].step == 2  # the pipeline trains too (tiny, two steps)
    (evaluated,) = results["evaluate-im2sp"]  # … and evaluates: test images, units scored, no ASR configured
    assert evaluated.images == 1 and evaluated.topline is None and "not configured" in evaluated.topline_note
    assert evaluated.unit_error_rate >= 0.0 and evaluated.examples[0]["image_id"] == "9"
    store = config.store.open()
    version = current_version(store, "coco", TRAINING_SHARDS)
    assert version is not None
    data = TrainData({"coco": version.version})
    settings = TrainSettings(steps=5, **SETTINGS)
    vocabulary = Vocabulary(image_codebook_size=16, speech_units=4)
    shutil.copytree(tmp_path / "store", tmp_path / "again")

    whole = train(store, data, settings, vocabulary)
    assert [row["step"] for row in whole.history] == [1, 2, 3, 4, 5] and whole.resumed_from == 0
    other = Store(str(tmp_path / "again"))
    cut = train(other, data, settings, vocabulary, stop_after=3)  # as if killed after the checkpoint of step 3
    assert cut.step == 3
    resumed = train(other, data, settings, vocabulary)
    assert resumed.resumed_from == 3 and resumed.step == 5
    for mine, theirs in zip(resumed.history, whole.history, strict=True):
        assert mine["step"] == theirs["step"]
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-6, abs=1e-7)
    runs = StoreVersion(other, "_shared", "train-runs", run_id(settings, data))
    assert sorted(runs.committed()) == ["step-00000004", "step-00000005"]  # the newest two are kept
    assert latest_checkpoint(runs) == "step-00000005"
    again = train(other, data, settings, vocabulary)
    assert (again.resumed_from, again.step) == (5, 5)  # a finished run does nothing more


def test_evaluate_scores_the_reference_speech_with_whisper(tmp_path: Path, prefect_harness: None) -> None:
    from flows.evaluate_im2sp import evaluate_im2sp_flow, metric_rows
    from flows.pipeline import pipeline_flow

    write_coco(tmp_path / "coco", [coco_entry(1, "train", ["A tone."]), coco_entry(2, "test", ["A beep.", "Tone."])])
    pipeline_flow(tiny_config(tmp_path))
    (result,) = evaluate_im2sp_flow(tiny_config(tmp_path, {"evaluation": {"asr": "faster-whisper"}}))
    assert result.topline is not None and result.topline["Bleu_4"] is not None and result.topline["SPICE"] is None
    rows = metric_rows([result])
    assert rows[0]["system"].startswith("reference speech") and rows[0]["model"] == "im2sp"
    assert rows[2]["paper_bleu4"] == "20.1 (context: the paper's official-im2sp-unit)"
    # The pipeline learned a vocoder for the speech codebook (train-vocoder): found by lineage, it speaks.
    assert result.generated is not None and rows[2]["Bleu_4"] != "not configured"
    assert rows[2]["unit_error_rate"] == f"{result.unit_error_rate:.3f}"

    # With a unit vocoder (speech-resynthesis format, K = 4 units), generated units become speech and are scored.
    from tests.test_vocoder import CONFIG, _checkpoint

    _checkpoint(tmp_path / "vocoder", {**CONFIG, "num_embeddings": 4})
    settings = {"evaluation": {"asr": "faster-whisper", "vocoder_checkpoint": str(tmp_path / "vocoder")}}
    (spoken,) = evaluate_im2sp_flow(tiny_config(tmp_path, settings))
    assert spoken.generated is not None and spoken.generated["CIDEr"] is not None and spoken.wavs
    assert len(list((tmp_path / "store" / spoken.wavs).glob("*.wav"))) == spoken.images
