"""Two runs of the same flow on one store at once: no corruption, every shard built once, both exit cleanly.

The second run waits at each shard the first is building (a shard lock, ``storage/locks.py``), then finds it
committed and skips it. Readers see the old version or the new, never a mix, while a new codebook's units
are being written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from storage.kinds import IMAGE_UNITS
from storage.reader import read_units
from storage.store import KILL_AT_ENV
from storage.versions import current_version
from tests.store_compare import differences, snapshot
from tests.tiny_datasets import coco_entry, tiny_config, write_coco

pytestmark = pytest.mark.timeout(900)
_IM2SP = str(Path(sys.executable).parent / "im2sp")
_BUILT = re.compile(r"coco: \d+ stored, \d+ rejected, (\d+) shards built, (\d+) skipped")


def _env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_LOGGING_LEVEL": "INFO"}


def _write_config(path: Path, document: dict[str, object], store: Path) -> Path:
    path.write_text(yaml.safe_dump({**document, "store": {"url": str(store)}}))
    return path


def test_two_runs_at_once_build_each_shard_once(tmp_path: Path, prefect_harness: None) -> None:
    from flows.build_manifests import build_manifests_flow
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.tokenize_images import tokenize_images_flow

    entries = [coco_entry(i, ("train", "val", "test")[i % 3], [f"Caption {i}."]) for i in range(1, 13)]
    write_coco(tmp_path / "coco", entries, speech=False)
    config = tiny_config(tmp_path, {"image_tokenizer": {"reconstruction_sample": 0}}, shard_size=2)
    document = config.model_dump(mode="json")
    build_manifests_flow(config)
    learn_image_codebook_flow(config)
    # The reference: one run alone, on a copy of the same store.
    alone = tmp_path / "alone"
    shutil.copytree(tmp_path / "store", alone)
    tokenize_images_flow(
        tiny_config(
            tmp_path, {"store": {"url": str(alone)}, "image_tokenizer": {"reconstruction_sample": 0}}, shard_size=2
        )
    )

    config_file = _write_config(tmp_path / "run.yaml", document, tmp_path / "store")
    runs = [
        subprocess.Popen(
            [_IM2SP, "run", "tokenize-images", "--config", str(config_file)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    counts = [tuple(int(n) for n in _BUILT.search(output).groups()) for output in outputs]  # type: ignore[union-attr]
    shards = 6
    assert sum(built for built, _ in counts) == shards, counts  # built once, by one run or the other
    assert all(built + skipped == shards for built, skipped in counts), counts
    assert differences(snapshot(alone), snapshot(tmp_path / "store")) == []


def test_readers_see_the_old_version_or_the_new_never_a_mix(tmp_path: Path, prefect_harness: None) -> None:
    from flows.build_manifests import build_manifests_flow
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.tokenize_images import tokenize_images_flow

    entries = [coco_entry(i, ("train", "val", "test")[i % 3], [f"Caption {i}."]) for i in range(1, 13)]
    write_coco(tmp_path / "coco", entries, speech=False)
    sections = {"image_tokenizer": {"reconstruction_sample": 0}}
    config = tiny_config(tmp_path, sections, shard_size=2)
    build_manifests_flow(config)
    learn_image_codebook_flow(config)
    (old,) = tokenize_images_flow(config)
    store = config.store.open()

    def read_current() -> tuple[str, dict[str, bytes]]:
        version = current_version(store, "coco", IMAGE_UNITS)
        assert version is not None
        return version.version, {s: read_units(version, s)[1].tobytes() for s in sorted(version.committed())}

    before = read_current()
    # A new codebook (another seed), and a tokenize-images run for it killed half-way (SIGKILL).
    new_config = tiny_config(
        tmp_path, {**sections, "image_tokenizer": {"reconstruction_sample": 0, "seed": 1}}, shard_size=2
    )
    learn_image_codebook_flow(new_config)
    config_file = _write_config(tmp_path / "new.yaml", new_config.model_dump(mode="json"), tmp_path / "store")
    killed = subprocess.run(
        [_IM2SP, "run", "tokenize-images", "--config", str(config_file)],
        env={**_env(), KILL_AT_ENV: "12"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    during = read_current()
    assert during == before  # the half-written new version is invisible: all shards of the old one
    (new,) = tokenize_images_flow(new_config)
    after = read_current()
    assert after[0] == new.version != old.version
    assert set(after[1]) == set(before[1]) and all(after[1][s] != before[1][s] for s in after[1])  # all new
