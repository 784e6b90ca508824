from __future__ import annotations

from pathlib import Path

import pytest

from flows.config import load_config
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
