from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from im2sp_models.asr import asr_names, load_asr
from im2sp_models.asr.whisper import assemble_packaged_whisper_base
from im2sp_models.caption_metrics import fallback_tokenize
from im2sp_models.errors import CheckpointError, UnknownModelError


def test_registry_names_and_errors(tmp_path: Path) -> None:
    assert asr_names() == ["faster-whisper", "wav2vec2-ctc"]
    with pytest.raises(UnknownModelError):
        load_asr("nope", tmp_path)
    with pytest.raises(CheckpointError, match="save_pretrained"):
        load_asr("wav2vec2-ctc", tmp_path / "missing")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json"):
        load_asr("faster-whisper", tmp_path)


def test_a_tiny_wav2vec2_ctc_loads_through_the_real_loader_and_transcribes(tmp_path: Path) -> None:
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    vocabulary = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate("ABCDE")}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocabulary))
    tokenizer_class: Any = Wav2Vec2CTCTokenizer
    tokenizer = tokenizer_class(str(tmp_path / "vocab.json"), word_delimiter_token="|")
    features: Any = Wav2Vec2FeatureExtractor
    processor_class: Any = Wav2Vec2Processor
    processor: Any = processor_class(features(do_normalize=True), tokenizer)
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).save_pretrained(tmp_path / "ctc")
    processor.save_pretrained(tmp_path / "ctc")
    recognizer = load_asr("wav2vec2-ctc", tmp_path / "ctc", device="cpu")
    wave = np.random.default_rng(0).normal(0, 0.1, 16_000).astype(np.float32)
    (text,) = recognizer.transcribe([wave])
    assert isinstance(text, str)
    model: Any = recognizer.model  # type: ignore[attr-defined]
    with torch.no_grad():
        logits = model(processor(wave, sampling_rate=16_000, return_tensors="pt").input_values).logits
    assert text == processor.decode(torch.argmax(logits, dim=-1)[0]).lower().strip()
    assert len(recognizer.fingerprint) == 16


def test_packaged_whisper_base_transcribes_the_sample_speech(tmp_path: Path, sample_dir: Path) -> None:
    folder = assemble_packaged_whisper_base(tmp_path / "whisper-base")
    assert (folder / "model.bin").stat().st_size > 100_000_000
    recognizer = load_asr("faster-whisper", folder, device="cpu")
    spoken = json.loads((sample_dir / "coco" / "SpokenCOCO" / "SpokenCOCO_val.json").read_text())
    caption = spoken["data"][0]["captions"][0]
    wave, rate = soundfile.read(sample_dir / "coco" / "SpokenCOCO" / caption["wav"], dtype="float32")
    assert rate == 16_000
    (text,) = recognizer.transcribe([wave])
    expected, heard = fallback_tokenize(caption["text"]).split(), fallback_tokenize(text).split()
    assert len(set(expected) & set(heard)) >= 0.7 * len(set(expected)), (caption["text"], text)
