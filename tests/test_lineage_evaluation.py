"""evaluate-im2sp derives what it evaluates from lineage: the units' tokenizer, and one WAV folder per evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import im2sp_models.caption_metrics
from flows.config import PipelineConfig
from storage.errors import Im2SpError
from storage.kinds import IMAGE_UNITS, TRAINING_SHARDS
from storage.versions import current_version
from tests.test_evaluate_models import _official_models, _tiny_ctc
from tests.tiny_datasets import coco_entry, tiny_config, write_coco


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    """A tiny COCO store the whole pipeline built with patch-vq image units (two test images), and the models."""
    from flows.pipeline import pipeline_flow
    from tests.test_vocoder import CONFIG, _checkpoint

    root = tmp_path_factory.mktemp("lineage-eval")
    entries = [
        coco_entry(1, "train", ["A tone."]),
        coco_entry(2, "test", ["A beep."]),
        coco_entry(3, "test", ["Tone."]),
    ]
    write_coco(root / "coco", entries)
    pipeline_flow(tiny_config(root))
    _checkpoint(root / "vocoder", {**CONFIG, "num_embeddings": 200})
    _tiny_ctc(root / "ctc")
    (root / "models.json").write_text(json.dumps(_official_models(root)))
    return root


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.evaluate_im2sp as module

    monkeypatch.setattr(im2sp_models.caption_metrics, "java_available", lambda: False)  # no JVM per call: fast
    monkeypatch.setattr(module, "create_table_artifact", lambda **kwargs: None)
    monkeypatch.setattr(module, "create_markdown_artifact", lambda **kwargs: None)


def _config(root: Path, kind: str, **evaluation: Any) -> PipelineConfig:
    model = json.loads((root / "models.json").read_text())[kind]
    section = {"asr": "wav2vec2-ctc", "asr_checkpoint": "ctc", "vocoder_checkpoint": "vocoder", "model": model}
    return tiny_config(root, {"evaluation": {**section, **evaluation}})


def test_the_released_unit_model_refuses_units_of_another_tokenizer(built: Path) -> None:
    from flows.evaluate_im2sp import evaluate_im2sp_flow

    store = tiny_config(built).store.open()
    shards = current_version(store, "coco", TRAINING_SHARDS)
    units = current_version(store, "coco", IMAGE_UNITS)
    assert shards is not None and units is not None and units.info()["produced_by"]["tokenizer"] == "patch-vq"
    with pytest.raises(Im2SpError) as refused:
        evaluate_im2sp_flow(_config(built, "official-im2sp-unit"))
    message = str(refused.value)
    assert "\n" not in message and "patch-vq" in message and units.version in message
    assert "SeiT" in message and "image_preprocess: official" in message and "build-training-shards" in message


def _wav_sets(root: Path) -> dict[str, set[str]]:
    """Each evaluation folder of the store's WAVs: the image ids it holds."""
    folders = root / "store" / "reports" / "evaluate-im2sp" / "coco"
    return {folder.name: {wav.stem for wav in folder.glob("*.wav")} for folder in sorted(folders.iterdir())}


def test_each_evaluation_keeps_its_own_wavs(built: Path) -> None:
    from flows.evaluate_im2sp import evaluate_im2sp_flow

    (trained,) = evaluate_im2sp_flow(_config(built, "im2sp"))
    (pixels,) = evaluate_im2sp_flow(_config(built, "official-im2sp"))
    assert trained.wavs != pixels.wavs
    assert sorted(_wav_sets(built).values(), key=len) == [{"2", "3"}, {"2", "3"}]  # a second model overwrote none
    (fewer,) = evaluate_im2sp_flow(_config(built, "im2sp", max_images=1))
    sets = _wav_sets(built)
    assert sets[Path(fewer.wavs).name] == {"2"}  # one evaluated image: one WAV in its folder, nothing left over
    assert sets[Path(trained.wavs).name] == {"2", "3"} and len(sets) == 3
    record = json.loads((built / "store" / fewer.wavs / "evaluation.json").read_text())
    assert record["images"] == ["2"] and record["model"]["kind"] == "im2sp"
    before = {p: p.stat().st_mtime_ns for p in (built / "store" / "reports").rglob("*")}
    evaluate_im2sp_flow(_config(built, "im2sp", max_images=1))  # the same evaluation again: nothing to write
    assert {p: p.stat().st_mtime_ns for p in (built / "store" / "reports").rglob("*")} == before


def test_tokenize_images_records_provenance_without_changing_the_version(built: Path) -> None:
    from flows.tokenize_images import tokenize_images_flow

    config = tiny_config(built)
    units = current_version(config.store.open(), "coco", IMAGE_UNITS)
    assert units is not None
    recorded = units.info()
    assert recorded["produced_by"]["provenance"] == {"seit_codebook_sha256": None, "precision": "fp32"}
    older = {**recorded, "produced_by": {k: v for k, v in recorded["produced_by"].items() if k != "provenance"}}
    (built / "store" / units.prefix / "version.json").write_text(json.dumps(older))  # made before it was recorded
    (result,) = tokenize_images_flow(config)
    assert result.version == units.version and result.shards_built == 0
    assert units.info()["produced_by"] == recorded["produced_by"]  # the next run that opens the version adds it
