"""The generic model registry: entries with typed settings, references that carry them, unchanged fingerprints."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from flows.config import parse_config
from flows.plans import extractor_ref, tokenizer_ref
from im2sp_models.asr import asr_names
from im2sp_models.image_tokenizers import TOKENIZERS, tokenizer_names
from im2sp_models.image_tokenizers.patch_vq import PatchVQ, PatchVQConfig
from im2sp_models.registry import ModelSettings, NoSettings, Registry
from im2sp_models.speech_features import extractor_names
from im2sp_models.speech_features.hubert import HubertSettings
from im2sp_models.speech_features.mfcc import MfccSettings
from im2sp_models.vocoders import vocoder_names
from storage.errors import ConfigError, UnknownModelError
from tasks.models import ExtractorRef, TokenizerRef, extractor_for, tokenizer_for

#: The mfcc fingerprint stores made before the typed settings are named by (default MfccConfig).
MFCC_FINGERPRINT = "c378003793ad74af"


def test_builtin_names() -> None:
    assert tokenizer_names() == ["patch-vq", "vit-vqgan"]
    assert extractor_names() == ["hubert", "mfcc"]
    assert asr_names() == ["faster-whisper", "wav2vec2-ctc"]
    assert vocoder_names() == ["unit-hifigan", "unit-mel"]


def test_the_config_names_the_same_mfcc_stores_as_before(tmp_path: Path) -> None:
    config = parse_config({"datasets": {"c": {"kind": "coco", "root": "c"}}}, base=tmp_path)
    assert extractor_for(extractor_ref(config)).fingerprint == MFCC_FINGERPRINT
    assert extractor_for(ExtractorRef("mfcc", "")).fingerprint == MFCC_FINGERPRINT


def test_the_config_names_the_same_patch_vq_stores_as_before(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    codebook = PatchVQ(PatchVQConfig(codebook_size=4), rng.random((4, 192), dtype=np.float32), device="cpu")
    codebook.save(tmp_path / "cb")
    expected = hashlib.sha256(
        b'{"codebook_size": 4, "image_size": 256, "name": "patch-vq", "patch": 8}' + codebook.codebook.tobytes()
    ).hexdigest()[:16]
    document = {"datasets": {"c": {"kind": "coco", "root": "c"}}, "image_tokenizer": {"checkpoint": "cb"}}
    config = parse_config(document, base=tmp_path)
    ref = tokenizer_ref(config, config.store.open())
    assert tokenizer_for(ref).fingerprint == expected


def test_hubert_options_travel_from_the_section(tmp_path: Path) -> None:
    document = {
        "datasets": {"c": {"kind": "coco", "root": "c"}},
        "speech": {"features": "hubert", "checkpoint": "h", "layer": 9, "batch_size": 5, "precision": "bf16"},
    }
    ref = extractor_ref(parse_config(document, base=tmp_path))
    assert ref.options == HubertSettings(layer=9, batch_size=5, precision="bf16")


def test_a_reference_validates_options_at_once_and_pickles() -> None:
    ref = ExtractorRef("mfcc", "", "cpu", {"n_mfcc": 20})
    assert ref.options == MfccSettings(n_mfcc=20)
    assert ref.key() == ExtractorRef("mfcc", "", "cpu", MfccSettings(n_mfcc=20)).key()
    assert pickle.loads(pickle.dumps(ref)) == ref
    assert ExtractorRef("mfcc", "").path is None
    with pytest.raises(ConfigError, match=r"speech feature extractor mfcc: n_mfc: Extra .* \(its options: n_mfcc"):
        ExtractorRef("mfcc", "", "cpu", {"n_mfc": 20})
    with pytest.raises(UnknownModelError, match="choose one of"):
        TokenizerRef("vqgan", "x")


class _Fixed:
    name: ClassVar[str] = "fixed"
    Settings: ClassVar[type[ModelSettings]] = NoSettings
    needs_checkpoint: ClassVar[bool] = False

    @classmethod
    def load(cls, checkpoint: Path | None, settings: NoSettings | None = None, *, device: str = "auto") -> _Fixed:
        return cls()


def test_a_registry_checks_its_entries() -> None:
    registry = Registry[_Fixed]("thing", "im2sp.tests-no-such-group", {})
    registry.register(_Fixed)
    assert registry.names() == ["fixed"] and isinstance(registry.load("fixed", None), _Fixed)
    with pytest.raises(ConfigError, match="its options: none"):
        registry.load("fixed", None, colour=1)

    class Other(_Fixed):
        pass

    with pytest.raises(UnknownModelError, match="two things named 'fixed'"):
        registry.register(Other)

    class NoCapabilities:
        name = "bare"

    with pytest.raises(UnknownModelError, match="missing Settings, needs_checkpoint, load"):
        registry.register(NoCapabilities)
    with pytest.raises(UnknownModelError, match="missing learns_codebook"):
        TOKENIZERS.register(type("Tokenizerish", (_Fixed,), {"name": "tokenizerish"}))
