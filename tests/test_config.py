from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from flows.config import PipelineConfig, load_config
from im2sp_models.image_tokenizers.vit_vqgan import ViTVQGANSettings
from im2sp_models.speech_features.hubert import HubertSettings
from im2sp_models.speech_features.mfcc import MfccSettings
from storage.errors import ConfigError
from storage.sources.spec import CocoSpec, Flickr8kSpec


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


def test_sections_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            """
store: {url: out/store}
datasets:
  coco: {kind: coco, root: data/coco}
  flickr8k: {kind: flickr8k, root: /abs/flickr, speech: null}
sharding: {shard_size: 8}
device: cpu
runner: {kind: dask, address: "tcp://127.0.0.1:8786"}
""",
        )
    )
    assert config.store.url == str(tmp_path / "out/store")
    assert isinstance(config.datasets["coco"], CocoSpec) and config.datasets["coco"].root == tmp_path / "data/coco"
    assert isinstance(config.datasets["flickr8k"], Flickr8kSpec) and config.datasets["flickr8k"].speech is None
    assert (config.sharding.shard_size, config.device, config.runner.kind) == (8, "cpu", "dask")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets: {coco: {kind: coco}}", "datasets.coco.coco.root: Field required"),
        ("datasets: {coco: {kind: coco, root: x, karpathyy: y}}", "datasets.coco.coco.karpathyy: Extra inputs"),
        ("datasets: {coco: {kind: vqa, root: x}}", "datasets.coco: Input tag 'vqa'"),
        ("datasets: {}", "datasets: Dictionary should have at least 1 item"),
        ("datasets: {c: {kind: coco, root: x}}\nsharding: {shard_size: 0}", "sharding.shard_size: Input should be"),
        ("datasets: {c: {kind: coco, root: x}}\ndevice: tpu", "device: Input should be 'auto', 'cpu' or 'cuda'"),
        ("datasets: {c: {kind: coco, root: x}}\nrunner: {address: a}", "only used with runner.kind: dask"),
        ("datasets: {c: {kind: coco, root: x}}\nstorre: {}", "storre: Extra inputs are not permitted"),
        ("datasets: {_shared: {kind: coco, root: x}}", "must start with a letter or digit"),
        ("datasets: {reports: {kind: coco, root: x}}", "is reserved"),
        ("datasets: {c: {kind: coco, root: x}}\nimage_tokenizer: {name: vit-vqgan}", "checkpoint is required"),
        (
            "datasets: {c: {kind: coco, root: x}}\nimage_tokenizer: {name: vit-vqgan, checkpoint: v, levels: 3}",
            "image_tokenizer.levels: neither a key of image_tokenizer nor an option of vit-vqgan (precision",
        ),
        (
            "datasets: {c: {kind: coco, root: x}}\nimage_tokenizer: {trust_pickle: true}",
            "image_tokenizer.trust_pickle: neither a key of image_tokenizer nor an option of patch-vq (precision)",
        ),
        ("datasets: {c: {kind: coco, root: x}}\nimage_tokenizer: {name: vqgan}", "unknown image tokenizer 'vqgan'"),
        (
            "datasets: {c: {kind: coco, root: x}}\nspeech: {layer: 9}",
            "speech.layer: neither a key of speech nor an option",
        ),
        ("datasets: {c: {kind: coco, root: x}}\nspeech: {features: hubert}", "speech.checkpoint is required"),
        ("datasets: {c: {kind: coco, root: x}}\nspeech: {features: wavlm}", "unknown speech feature extractor 'wavlm'"),
        (
            "datasets: {c: {kind: coco, root: x}}\nevaluation: {asr: whisper}",
            "evaluation.asr: Value error, unknown ASR",
        ),
        ("datasets: {c: {kind: coco, root: x}}\nevaluation: {vocoder: hifigan}", "unknown vocoder 'hifigan'"),
    ],
)
def test_errors_name_the_bad_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as raised:
        load_config(_write(tmp_path, text))
    assert message in str(raised.value)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pipeline\.yaml:4:1: not valid YAML"):
        load_config(_write(tmp_path, "store:\n  url: x\n  bad: [unclosed\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "nope.yaml")


def test_model_options_sit_in_their_section_and_come_out_typed(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            """
datasets: {c: {kind: coco, root: x}}
image_tokenizer: {name: vit-vqgan, checkpoint: vq.ckpt, precision: bf16, codec: ans, forward_batch: 4}
speech: {features: hubert, checkpoint: hubert, layer: 9, batch_size: 3}
""",
        )
    )
    tokenizer, speech = config.image_tokenizer, config.speech
    assert isinstance(tokenizer.settings(), ViTVQGANSettings) and isinstance(speech.settings(), HubertSettings)
    assert tokenizer.settings() == ViTVQGANSettings(precision="bf16", forward_batch=4)
    assert (tokenizer.codec, tokenizer.batch_size) == ("ans", 32)  # the section's own keys stay the section's
    assert speech.settings() == HubertSettings(layer=9, batch_size=3)  # batch_size: the section's and hubert's
    assert tokenizer.entry.needs_checkpoint and not tokenizer.entry.learns_codebook
    assert PipelineConfig.model_validate(config.model_dump(mode="json")) == config
    assert pickle.loads(pickle.dumps(config)) == config  # the per-model sections pickle by reference


def test_weight_free_defaults_and_mfcc_options(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "datasets: {c: {kind: coco, root: x}}\nspeech: {n_mfcc: 20}\n"))
    assert (config.image_tokenizer.name, config.speech.features) == ("patch-vq", "mfcc")
    assert config.image_tokenizer.entry.learns_codebook and not config.speech.entry.needs_checkpoint
    assert config.speech.settings() == MfccSettings(n_mfcc=20)
    assert (config.evaluation.asr, config.evaluation.vocoder) == ("faster-whisper", "unit-hifigan")


def test_the_sample_config_validates(tmp_path: Path) -> None:
    from storage.sample.build import default_config

    config = load_config(_write(tmp_path, yaml.safe_dump(default_config(tmp_path))))
    assert (config.image_tokenizer.name, config.speech.features) == ("patch-vq", "mfcc")
