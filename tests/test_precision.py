"""``precision`` travels from the config to the models it names; fp32 is the default, numpy models refuse bf16."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.config import parse_config
from flows.plans import extractor_ref, tokenizer_ref
from storage.errors import ConfigError


def _config(tmp_path: Path, **sections: Any) -> Any:
    return parse_config({"datasets": {"coco": {"kind": "coco", "root": "coco"}}, **sections}, base=tmp_path)


def _precision(settings: object) -> str:
    return str(getattr(settings, "precision"))  # noqa: B009 - each model's settings class has its own


def test_fp32_is_the_default(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert _precision(config.image_tokenizer.settings()) == _precision(config.speech.settings()) == "fp32"


def test_bf16_reaches_vit_vqgan_and_hubert(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        image_tokenizer={"name": "vit-vqgan", "checkpoint": "vq.ckpt", "precision": "bf16"},
        speech={"features": "hubert", "checkpoint": "hubert", "precision": "bf16"},
    )
    assert _precision(tokenizer_ref(config, config.store.open()).options) == "bf16"
    assert _precision(extractor_ref(config).options) == "bf16"
    default = _config(
        tmp_path,
        image_tokenizer={"name": "vit-vqgan", "checkpoint": "vq.ckpt"},
        speech={"features": "hubert", "checkpoint": "hubert"},
    )
    assert _precision(tokenizer_ref(default, default.store.open()).options) == "fp32"
    assert _precision(extractor_ref(default).options) == "fp32"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"image_tokenizer": {"name": "patch-vq", "precision": "bf16"}}, "image_tokenizer.precision"),
        ({"speech": {"features": "mfcc", "precision": "bf16"}}, "speech.precision"),
        ({"speech": {"features": "hubert", "checkpoint": "h", "precision": "fp16"}}, "speech.precision"),
    ],
)
def test_precision_that_means_nothing_is_a_config_error(tmp_path: Path, section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _config(tmp_path, **section)
