"""evaluate-im2sp with each Im2Sp model kind: tiny official-format checkpoints fill every row of the metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import im2sp_models.caption_metrics
from flows.config import parse_config
from storage.errors import ConfigError
from tests import official_reference as ref
from tests.tiny_datasets import coco_entry, tiny_config, write_coco

DATASETS = {"datasets": {"coco": {"kind": "coco", "root": "coco"}}}


def _tiny_ctc(folder: Path) -> Path:
    """A tiny wav2vec2-ctc ASR folder (model + processor), saved as a real one is."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir()
    vocabulary = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate("ABTONE")}}
    (folder / "vocab.json").write_text(json.dumps(vocabulary))
    tokenizer: Any = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")  # type: ignore[no-untyped-call]
    processor: Any = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(do_normalize=True), tokenizer)  # type: ignore[no-untyped-call]
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=len(vocabulary),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _official_models(root: Path) -> dict[str, dict[str, Any]]:
    """Tiny checkpoints in the authors' layout, and each kind's ``evaluation.model`` section (paths relative)."""
    git = ref.tiny_git_folder(root / "git-large")
    crop = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}  # the tiny tower's input
    (git / "preprocessor_config.json").write_text(json.dumps(crop))
    ref.save_their_checkpoint(ref.pixel_model(git, eos_bias=0.6), root / "Im_to_Speech.ckpt")
    torch.manual_seed(4)
    codebook = torch.randn(16, 32)  # covers the 16 image-unit ids of the tiny pipeline (patch-vq's; SeiT's own)
    torch.save(codebook, root / "codebook.ckpt")
    ref.save_their_checkpoint(ref.unit_model(git, codebook, eos_bias=1.4), root / "Im_unit_to_Speech.ckpt")
    common = {"git_config": "git-large", "max_length": 24}  # the tiny GiT has 64 positions
    return {
        "official-im2sp": {"kind": "official-im2sp", "checkpoint": "Im_to_Speech.ckpt", **common},
        "official-im2sp-unit": {
            "kind": "official-im2sp-unit",
            "checkpoint": "Im_unit_to_Speech.ckpt",
            "codebook": "codebook.ckpt",
            "seit_heads": 2,
            **common,
        },
        "im2sp": {},  # the default: the newest checkpoint of the tiny training run
    }


class _Tokens(torch.nn.Module):
    """SeiT's encoder stand-in: ``(B, 3, 256, 256)`` → ``(B, 1024, 32)`` vectors (pickled whole, as theirs)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 32, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x).flatten(2).transpose(1, 2)
        return out


def seit_tokenizer(root: Path) -> dict[str, Any]:
    """A tiny SeiT pair beside ``root / "codebook.ckpt"`` (the unit model's), as the authors tokenized: the section."""
    folder = root / "seit"
    folder.mkdir()
    torch.manual_seed(5)
    torch.save(_Tokens(), folder / "tokenizer.ckpt")
    (folder / "codebook.ckpt").write_bytes((root / "codebook.ckpt").read_bytes())
    return {"name": "vit-vqgan", "checkpoint": "seit", "trust_pickle": True, "image_preprocess": "official"}


def test_every_model_kind_fills_every_row_of_the_metrics(
    tmp_path: Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.evaluate_im2sp as module
    from flows.pipeline import pipeline_flow
    from tests.test_vocoder import CONFIG, _checkpoint

    entries = [coco_entry(1, "train", ["A tone."]), coco_entry(2, "test", ["A beep.", "Tone."])]
    write_coco(tmp_path / "coco", [*entries, coco_entry(3, "test", ["Not a tone."])])
    models = _official_models(tmp_path)
    # the released unit model reads units of SeiT's tokenizer with its codebook, tokenized as the authors did
    tokenizer = {"image_tokenizer": seit_tokenizer(tmp_path)}
    pipeline_flow(tiny_config(tmp_path, tokenizer))
    _checkpoint(tmp_path / "vocoder", {**CONFIG, "num_embeddings": 200})
    tables: list[dict[str, Any]] = []
    monkeypatch.setattr(module, "create_table_artifact", lambda **kwargs: tables.append(kwargs))
    monkeypatch.setattr(module, "create_markdown_artifact", lambda **kwargs: None)
    # Java's scorers (PTB tokenizer, METEOR) run with the first kind only: a JVM per call is the slow part here.
    java = im2sp_models.caption_metrics.java_available
    evaluation = {
        "asr": "wav2vec2-ctc",
        "asr_checkpoint": str(_tiny_ctc(tmp_path / "ctc")),
        "vocoder_checkpoint": "vocoder",
    }
    paper = {
        "official-im2sp": "25.9",
        "official-im2sp-unit": "20.1",
        "im2sp": "20.1 (context: the paper's official-im2sp-unit)",
    }
    for kind, model in models.items():
        with_java = kind == "official-im2sp"
        monkeypatch.setattr(im2sp_models.caption_metrics, "java_available", java if with_java else lambda: False)
        config = tiny_config(tmp_path, {**tokenizer, "evaluation": {**evaluation, "model": model}})
        (result,) = module.evaluate_im2sp_flow(config)
        assert result.model == kind and result.images == 2 and result.dataset_kind == "coco"
        assert all(
            0 <= unit < 200 for example in result.examples for unit in map(int, example["generated_units"].split())
        )
        (call,) = tables[-1:]
        assert call["key"] == "evaluate-im2sp-metrics"
        topline, resynthesis, generated = call["table"]
        assert topline["system"].startswith("reference speech") and generated["system"].startswith("generated")
        assert resynthesis["system"].endswith("(resynthesis)")
        for row in (topline, resynthesis, generated):
            assert row["model"] == kind and row["dataset"] == "coco"
            assert not [column for column, cell in row.items() if "not configured" in cell], row
            for metric in module.METRIC_COLUMNS:
                skipped = metric == "SPICE" or (metric == "METEOR" and not with_java)
                assert row[metric] == "skipped" if skipped else float(row[metric]) >= 0.0, (metric, row)
        assert generated["paper_bleu4"] == paper[kind] and float(generated["unit_error_rate"]) >= 0.0
        expected = float(generated["Bleu_4"]) - float(paper[kind].split()[0])
        assert float(generated["bleu4_vs_paper"].split()[0]) == pytest.approx(expected, abs=0.051)


def test_evaluation_model_config_refuses_wrong_keys_and_two_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"evaluation\.model\.beam: neither .* official-im2sp \(git_config, beams"):
        parse_config(
            {**DATASETS, "evaluation": {"model": {"kind": "official-im2sp", "checkpoint": "m", "beam": 2}}},
            base=tmp_path,
        )
    with pytest.raises(ConfigError, match=r"evaluation\.checkpoint and evaluation\.model are both set"):
        parse_config({**DATASETS, "evaluation": {"checkpoint": "a", "model": {"checkpoint": "b"}}}, base=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown Im2Sp model kind 'gpt'"):
        parse_config({**DATASETS, "evaluation": {"model": {"kind": "gpt"}}}, base=tmp_path)
    old = parse_config({**DATASETS, "evaluation": {"checkpoint": "run/step-1"}}, base=tmp_path).evaluation.model
    assert (old.kind, old.checkpoint) == ("im2sp", tmp_path / "run/step-1")  # the older spelling still works
    section = {"kind": "official-im2sp-unit", "checkpoint": "u.ckpt", "codebook": "c.ckpt", "git_config": "git"}
    model = parse_config({**DATASETS, "evaluation": {"model": section}}, base=tmp_path).evaluation.model
    assert model.settings().model_dump()["codebook"] == tmp_path / "c.ckpt"  # relative to the config file
