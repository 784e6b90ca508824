"""An image tokenizer from another package: built, pip-installed into a temporary folder, found, and run.

The plugin distribution is written here (a pyproject naming an ``im2sp.image_tokenizers`` entry point and one
module with a fixed-grid colour quantizer), installed offline with ``pip install --target`` into the test's own
folder (nothing lands in the venv), and used two ways: in this process (sys.path and the registry restored
after), and by ``im2sp run tokenize-images`` in a subprocess whose PYTHONPATH holds the folder.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from im2sp_models.image_tokenizers import TOKENIZERS, load_tokenizer
from storage.errors import ConfigError
from storage.manifests import build_manifests
from storage.sources.spec import CocoSpec
from storage.store import Store
from tests.tiny_datasets import coco_entry, write_coco

IM2SP = str(Path(sys.executable).parent / "im2sp")
#: pip without the network: no index, no build isolation (setuptools from the venv), no dependencies.
PIP_OFFLINE = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation"]

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "im2sp-grid-colour"
version = "0.1.0"

[project.entry-points."im2sp.image_tokenizers"]
grid-colour = "im2sp_grid_colour:GridColour"

[tool.setuptools]
py-modules = ["im2sp_grid_colour"]
"""

MODULE = '''\
"""grid-colour: each 8x8 patch becomes its mean colour, each channel quantized to ``levels`` steps."""

import hashlib
from typing import ClassVar

import numpy as np
from pydantic import Field

from im2sp_models.registry import ModelSettings


class GridColourSettings(ModelSettings):
    levels: int = Field(4, ge=2, le=16)


class GridColour:
    name: ClassVar[str] = "grid-colour"
    Settings = GridColourSettings
    needs_checkpoint = False
    learns_codebook = False

    def __init__(self, levels):
        self.levels = levels

    @classmethod
    def load(cls, checkpoint, settings=None, *, device="auto"):
        return cls((settings or GridColourSettings()).levels)

    @property
    def codebook_size(self):
        return self.levels**3

    @property
    def fingerprint(self):
        return hashlib.sha256(f"{self.name}\\n{self.levels}".encode()).hexdigest()[:16]

    @property
    def can_decode(self):
        return True

    def codebook_vectors(self):
        steps = (np.arange(self.levels, dtype=np.float32) + 0.5) / self.levels
        r, g, b = np.meshgrid(steps, steps, steps, indexing="ij")
        return np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)

    def encode(self, images):
        means = images.reshape(len(images), 3, 32, 8, 32, 8).mean(axis=(3, 5))
        q = np.clip((means * self.levels).astype(np.int64), 0, self.levels - 1)
        return (q[:, 0] * self.levels + q[:, 1]) * self.levels + q[:, 2]

    def decode(self, units):
        colours = self.codebook_vectors()[units]  # (B, 32, 32, 3)
        return np.repeat(np.repeat(colours.transpose(0, 3, 1, 2), 8, axis=2), 8, axis=3).astype(np.float32)
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed into a folder of its own (offline: no index, no build isolation, no dependencies)."""
    source = tmp_path_factory.mktemp("plugin-source")
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "im2sp_grid_colour.py").write_text(MODULE)
    target = tmp_path_factory.mktemp("plugin-target")
    subprocess.run(
        [*PIP_OFFLINE, "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    return target


@pytest.fixture
def installed(plugin: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin importable in this process; sys.path, sys.modules and the registry are restored after."""
    monkeypatch.syspath_prepend(str(plugin))
    monkeypatch.setattr(TOKENIZERS, "_entries", dict(TOKENIZERS._entries))
    importlib.invalidate_caches()
    yield plugin
    sys.modules.pop("im2sp_grid_colour", None)
    importlib.invalidate_caches()


def test_the_plugin_is_found_loaded_and_checked(installed: Path) -> None:
    assert "grid-colour" in TOKENIZERS.names()
    entry = TOKENIZERS.entry("grid-colour")
    assert not entry.needs_checkpoint and not entry.learns_codebook
    tokenizer = load_tokenizer("grid-colour", None, levels=3)
    images = np.random.default_rng(0).random((2, 3, 256, 256), dtype=np.float32)
    units = tokenizer.encode(images)
    assert units.shape == (2, 32, 32) and units.min() >= 0 and units.max() < tokenizer.codebook_size == 27
    assert np.array_equal(tokenizer.encode(tokenizer.decode(units)), units)
    with pytest.raises(ConfigError, match=r"grid-colour: colours: .*its options: levels"):
        load_tokenizer("grid-colour", None, colours=3)


def test_a_plugin_never_takes_a_builtin_name(installed: Path) -> None:
    assert TOKENIZERS.names().count("patch-vq") == 1
    assert TOKENIZERS.entry("patch-vq").__module__ == "im2sp_models.image_tokenizers.patch_vq"


def test_tokenize_images_runs_the_plugin_from_its_config_keys(plugin: Path, tmp_path: Path) -> None:
    entries = [coco_entry(i, "train", [f"Caption {i}."]) for i in range(1, 4)]
    write_coco(tmp_path / "coco", entries, speech=False)
    build_manifests(Store(str(tmp_path / "store")), "coco", CocoSpec(root=tmp_path / "coco"), shard_size=2)
    (tmp_path / "pipeline.yaml").write_text(
        textwrap.dedent(
            """\
            store: {url: store}
            datasets: {coco: {kind: coco, root: coco}}
            sharding: {shard_size: 2}
            image_tokenizer: {name: grid-colour, levels: 3, reconstruction_sample: 2}
            device: cpu
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("IM2SP_DEBUG", "PREFECT_API_URL")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PYTHONPATH"] = os.pathsep.join([str(plugin), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [IM2SP, "run", "tokenize-images", "--config", "pipeline.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    infos = list((tmp_path / "store" / "coco").rglob("version.json"))
    produced = [json.loads(p.read_text()).get("produced_by", {}) for p in infos]
    assert {"tokenizer": "grid-colour", "codebook_size": 27} in [
        {k: p.get(k) for k in ("tokenizer", "codebook_size")} for p in produced
    ], produced
