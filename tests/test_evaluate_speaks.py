"""evaluate-im2sp speaks: the store's vocoder by lineage, the resynthesis row, WER, pictures, kept and trended runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import yaml
from typer.testing import CliRunner

import im2sp_models.caption_metrics
from flows.config import PipelineConfig
from im2sp_models.spectrogram import N_MELS, log_mel
from im2sp_models.word_error import normalize_words, word_error_rate
from storage.blob_writer import BlobWriter
from storage.errors import Im2SpError
from storage.evaluation_reports import EVALUATION_REPORTS, latest_evaluations
from storage.kept_reports import repeats_newest
from storage.kinds import SHARED, SPEECH_UNITS, TRAINING_SHARDS
from storage.speech_units_writer import read_speech_units
from storage.store import Store
from storage.versions import StoreVersion, current_version
from storage.vocoder_store import FINISHED, publish_vocoder
from tests.test_evaluate_models import _tiny_ctc
from tests.tiny_datasets import coco_entry, tiny_config, tiny_document, write_coco

#: What the tests capture of the flow's artifacts, by key.
Artifacts = dict[str, list[Any]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    """A tiny COCO store up to a trained model (test images 2, two utterances, and 3), no vocoder; a tiny CTC ASR."""
    from flows.build_manifests import build_manifests_flow
    from flows.build_training_shards import build_training_shards_flow
    from flows.extract_speech_features import extract_speech_features_flow
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.learn_speech_codebook import learn_speech_codebook_flow
    from flows.tokenize_images import tokenize_images_flow
    from flows.train_im2sp import train_im2sp_flow
    from flows.unitize_speech import unitize_speech_flow

    root = tmp_path_factory.mktemp("speaks")
    write_coco(
        root / "coco",
        [
            coco_entry(1, "train", ["A tone."]),
            coco_entry(2, "test", ["A beep.", "Two loud beeps ring out."]),
            coco_entry(3, "test", ["Tone."]),
        ],
    )
    config = tiny_config(root)
    for stage in (
        build_manifests_flow,
        learn_image_codebook_flow,
        tokenize_images_flow,
        extract_speech_features_flow,
        learn_speech_codebook_flow,
        unitize_speech_flow,
        build_training_shards_flow,
        train_im2sp_flow,
    ):  # the pipeline's stages but train-vocoder: the store holds no vocoder until a test publishes one
        stage(config)
    _tiny_ctc(root / "ctc")
    return root


@pytest.fixture(autouse=True)
def artifacts(monkeypatch: pytest.MonkeyPatch) -> Artifacts:
    import flows.evaluate_im2sp as module

    captured: Artifacts = {}
    monkeypatch.setattr(im2sp_models.caption_metrics, "java_available", lambda: False)  # no JVM per call: fast
    monkeypatch.setattr(module, "create_table_artifact", lambda **kw: captured.setdefault(kw["key"], []).append(kw))
    monkeypatch.setattr(module, "create_markdown_artifact", lambda **kw: captured.setdefault(kw["key"], []).append(kw))
    return captured


def _sections(**evaluation: Any) -> dict[str, dict[str, Any]]:
    return {"evaluation": {"asr": "wav2vec2-ctc", "asr_checkpoint": "ctc", **evaluation}}


def _config(root: Path, **evaluation: Any) -> PipelineConfig:
    return tiny_config(root, _sections(**evaluation))


def _codebook(root: Path) -> str:
    store = tiny_config(root).store.open()
    shards = current_version(store, "coco", TRAINING_SHARDS)
    assert shards is not None
    units = StoreVersion(store, "coco", SPEECH_UNITS, shards.info()["produced_by"]["speech_units"])
    return str(units.info()["produced_by"]["codebook"])


def _vocoder_folder(folder: Path, **config: Any) -> Path:
    """A tiny unit-hifigan folder (K = 4 units, the tiny codebook's), its config.json updated by ``config``."""
    from tests.test_vocoder import CONFIG, _checkpoint

    _checkpoint(folder, {**CONFIG, "num_embeddings": 4, **config})
    return folder


class _SaysABeep:
    """An ASR that hears "a beep" in any speech: image 2's second utterance ("Two loud beeps ring out.") badly."""

    def transcribe(self, waveforms: list[np.ndarray]) -> list[str]:
        return ["a beep" for _ in waveforms]


def _publish(store: Store, folder: Path, codebook: str, version_id: str = "tiny-voc") -> StoreVersion:
    """Register ``folder`` as the store's vocoder of ``codebook``, as train-vocoder does."""
    version = StoreVersion(store, SHARED, "vocoders", version_id)
    version.ensure_created({"kind": "unit-hifigan", "codebook": codebook})
    with BlobWriter(version, FINISHED, input_fingerprint=version_id) as writer:
        for file in sorted(folder.iterdir()):
            writer.write(file.name, {"bytes": file.read_bytes()})
    publish_vocoder(version, codebook)
    return version


def test_without_a_vocoder_the_spoken_rows_name_the_codebook_to_train_one_for(built: Path) -> None:
    from flows.evaluate_im2sp import evaluate_im2sp_flow, metric_rows

    (result,) = evaluate_im2sp_flow(_config(built))
    why = f"not configured: no vocoder for speech codebook {_codebook(built)} (run train-vocoder)"
    assert result.resynthesis is None and result.generated is None
    assert result.resynthesis_note == why and result.generated_note.startswith(why)
    assert result.topline is not None and result.topline_wer is not None and result.topline_wer >= 0.0
    topline, resynthesis, generated = metric_rows([result])
    assert topline["wer"] == f"{100 * result.topline_wer:.1f}" and resynthesis["wer"] == "not configured"
    assert resynthesis["system"].endswith("(resynthesis)") and resynthesis["Bleu_4"] == "not configured"
    assert generated["wer"] == "-" and generated["Bleu_4"] == "not configured"


def test_the_store_vocoder_of_the_units_codebook_speaks_resynthesis_and_generated_rows(
    built: Path, artifacts: Artifacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.evaluate
    from flows.evaluate_im2sp import evaluate_im2sp_flow, metric_rows

    monkeypatch.setattr(tasks.evaluate, "asr_for", lambda ref: _SaysABeep())
    store = tiny_config(built).store.open()
    codebook = _codebook(built)
    version = _publish(store, _vocoder_folder(built / "voc-store", codebook=codebook), codebook)
    try:
        (result,) = evaluate_im2sp_flow(_config(built))
    finally:
        shutil.rmtree(Path(store.path(f"{SHARED}/vocoders")))  # the other tests see no store vocoder
    vocoder = result.made_by["vocoder"]
    assert vocoder["version"] == version.version and vocoder["kind"] == "unit-hifigan"
    assert result.resynthesis is not None and result.generated is not None
    assert result.resynthesis["CIDEr"] is not None and result.generated["CIDEr"] is not None
    # WER over every utterance of the test images ("a beep" heard each time): image 2's two (0 of 2 words wrong,
    # 5 of 5), image 3's one (2 edits, 1 word); over first utterances only it would be 2 / 3
    assert result.topline_wer == result.resynthesis_wer == pytest.approx(7 / 8)
    assert result.topline_wer_utterances == result.resynthesis_wer_utterances == 3
    resynthesized = Path(store.path(result.resynthesis_wavs))
    assert result.resynthesis_wavs.startswith("reports/evaluate-im2sp-resynthesis/coco/unit-hifigan-")
    record = json.loads((resynthesized / "evaluation.json").read_text())
    assert record["speech_units"] == result.made_by["speech_units"]
    assert [len(record["utterances"][i]) for i in ("2", "3")] == [2, 1]  # one WAV per utterance, by its key
    keys = [key for i in ("2", "3") for key in record["utterances"][i]]
    assert sorted(w.stem for w in resynthesized.glob("*.wav")) == sorted(keys)
    # full-rate units resynthesized: frames × hop samples, as many frames as the stored utterance's
    units = StoreVersion(store, "coco", SPEECH_UNITS, record["speech_units"])
    stored = {k: v[0] for shard in units.committed() for k, v in read_speech_units(units, shard).items()}
    assert all(soundfile.info(str(resynthesized / f"{k}.wav")).frames == 40 * len(stored[k]) for k in keys)
    rows = metric_rows([result])
    assert [r["system"].split(" → ")[0] for r in rows] == ["reference speech", "reference units", "generated units"]
    assert all(r[m] != "not configured" for r in rows for m in ("Bleu_4", "CIDEr"))
    assert [(r["wer"], r["wer_utterances"]) for r in rows] == [("87.5", "3"), ("87.5", "3"), ("-", "-")]
    (markdown,) = artifacts["evaluate-im2sp-examples"]
    text = markdown["markdown"]
    assert "data:image/png;base64," in text and result.picture_wavs["image"] == "2"
    assert result.picture_wavs["resynthesized"] in text and result.picture_wavs["generated"] in text
    assert result.picture_wavs["resynthesized"].endswith(f"/{record['utterances']['2'][0]}.wav")
    assert result.picture.startswith("reports/evaluate-im2sp-pictures/coco/2-") and store.exists(result.picture)
    assert Path(result.picture_wavs["reference"]).is_file()


def test_a_vocoder_given_by_path_must_be_the_units_codebooks(built: Path) -> None:
    from flows.evaluate_im2sp import evaluate_im2sp_flow

    codebook = _codebook(built)
    other = _vocoder_folder(built / "voc-other", codebook="km-other")
    with pytest.raises(Im2SpError) as refused:
        evaluate_im2sp_flow(_config(built, vocoder_checkpoint="voc-other"))
    message = str(refused.value)
    assert "\n" not in message and "km-other" in message and codebook in message and str(other) in message
    _vocoder_folder(built / "voc-small", num_embeddings=2)  # records no codebook: its unit count must cover K=4
    with pytest.raises(Im2SpError, match=rf"voices 2 units.*speech codebook {codebook} \(K=4"):
        evaluate_im2sp_flow(_config(built, vocoder_checkpoint="voc-small"))
    _vocoder_folder(built / "voc-mine", codebook=codebook)
    (result,) = evaluate_im2sp_flow(_config(built, vocoder_checkpoint="voc-mine"))
    assert result.generated is not None and result.made_by["vocoder"]["checkpoint"] == str(built / "voc-mine")


def test_each_run_is_kept_once_trended_and_reported_by_the_command(built: Path, artifacts: Artifacts) -> None:
    from flows.cli import app
    from flows.evaluate_im2sp import evaluate_im2sp_flow

    store = tiny_config(built).store.open()
    _vocoder_folder(built / "voc-report", codebook=_codebook(built))
    config = _config(built, vocoder_checkpoint="voc-report")
    evaluate_im2sp_flow(config)
    kept = sorted(Path(store.path(EVALUATION_REPORTS)).glob("*.json"))
    newest = json.loads(kept[-1].read_text())
    (evaluation,) = newest["evaluations"]
    assert evaluation["model"]["kind"] == "im2sp" and evaluation["model"]["step"] == 2
    assert evaluation["codebook"] == _codebook(built) and evaluation["vocoder"]["kind"] == "unit-hifigan"
    assert set(evaluation["rows"]) == {"topline", "resynthesis", "generated"}
    assert newest["asr"]["kind"] == "wav2vec2-ctc"
    assert evaluation["rows"]["resynthesis"]["wer"] is not None and evaluation["rows"]["generated"]["metrics"]
    wer_utterances = {row: evaluation["rows"][row]["wer_utterances"] for row in ("topline", "resynthesis", "generated")}
    assert wer_utterances == {"topline": 3, "resynthesis": 3, "generated": None}
    before = sorted(p.name for p in Path(store.path("reports")).rglob("*"))
    evaluate_im2sp_flow(config)  # measures exactly the same: nothing new is kept, nothing written
    assert sorted(p.name for p in Path(store.path("reports")).rglob("*")) == before
    trend = artifacts["evaluate-im2sp-trend"][-1]["markdown"]
    assert trend.count("| coco | im2sp | 2 |") == len(kept)
    (built / "pipeline.yaml").write_text(yaml.safe_dump(tiny_document(_sections(vocoder_checkpoint="voc-report"))))
    printed = CliRunner().invoke(app, ["report", "evaluation", "--config", str(built / "pipeline.yaml"), "--json"])
    assert printed.exit_code == 0, printed.output
    (latest,) = json.loads(printed.output)["evaluations"]
    assert latest["report"] == kept[-1].stem and latest["rows"] == evaluation["rows"]
    command = ["report", "evaluation", "--config", str(built / "pipeline.yaml")]
    table = CliRunner().invoke(app, command, terminal_width=200)
    assert table.exit_code == 0 and "latest run per dataset and model" in table.output and "coco" in table.output
    kept[0].write_text("{")  # a damaged kept report: left out, named, exit code 1
    damaged = CliRunner().invoke(app, ["report", "evaluation", "--config", str(built / "pipeline.yaml"), "--json"])
    assert damaged.exit_code == 1 and kept[0].stem in damaged.output


def test_latest_evaluations_keep_the_newest_run_of_each_dataset_and_model() -> None:
    rows = {row: {"metrics": None, "wer": None} for row in ("topline", "resynthesis", "generated")}

    def run(name: str, *models: str) -> dict[str, Any]:
        evaluations = [{"dataset": "coco", "model": {"kind": m}, "rows": rows} for m in models]
        return {"name": name, "created_at": name, "evaluations": evaluations}

    latest = latest_evaluations([run("a", "im2sp", "official-im2sp"), run("b", "im2sp")])
    assert [(e["model"]["kind"], e["report"]) for e in latest] == [("im2sp", "b"), ("official-im2sp", "a")]


def test_a_report_without_companions_repeats_on_its_json_alone(store: Store) -> None:
    document = {"evaluations": [], "created_at": "t1"}
    store.write_bytes("reports/evaluation/20260101T000000000000Z.json", json.dumps(document).encode())
    assert repeats_newest(store, "reports/evaluation", {**document, "created_at": "t2"}) is None  # wants a .png
    again = repeats_newest(store, "reports/evaluation", {**document, "created_at": "t2"}, companions=())
    assert again == "20260101T000000000000Z"


def test_word_error_rate_normalises_case_and_punctuation() -> None:
    assert normalize_words("A DOG, runs! 'quoted' don't") == ["a", "dog", "runs", "quoted", "don't"]
    assert word_error_rate({"1": "a dog runs"}, {"1": "A DOG RUNS."}) == 0.0
    assert word_error_rate({"1": "a cat", "2": ""}, {"1": "A dog.", "2": "Two cats sleep."}) == pytest.approx(4 / 5)
    assert word_error_rate({"1": "words"}, {"1": "..."}) is None  # no reference word: no rate


def test_log_mel_has_80_bands_and_a_frame_for_empty_speech() -> None:
    tone = np.sin(np.arange(16_000) / 5).astype(np.float32)
    mel = log_mel(tone)
    assert mel.shape == (1 + 16_000 // 256, N_MELS) and np.isfinite(mel).all()
    assert log_mel(np.zeros(0, np.float32)).shape[1] == N_MELS
