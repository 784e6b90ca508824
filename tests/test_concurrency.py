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
from functools import partial
from pathlib import Path

import pytest
import yaml

from storage.kinds import IMAGE_UNITS
from storage.reader import read_units
from storage.versions import current_version
from tests.fault_injection import KILL_AT_ENV, ROOT, command
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
        command("run", "tokenize-images", "--config", str(config_file)),
        env={**_env(), KILL_AT_ENV: "12"},
        cwd=ROOT,
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


class _Overlap:
    """Counts calls of a wrapped function and the most that ran at once (each call sleeps a little)."""

    def __init__(self, wrapped: object) -> None:
        import threading

        self.wrapped, self.lock, self.active, self.most, self.calls = wrapped, threading.Lock(), 0, 0, 0

    def __call__(self, *args: object, **kwargs: object) -> object:
        import time

        with self.lock:
            self.active, self.calls = self.active + 1, self.calls + 1
            self.most = max(self.most, self.active)
        time.sleep(0.3)  # long enough for the other thread to arrive while this one writes
        try:
            return self.wrapped(*args, **kwargs)  # type: ignore[operator]
        finally:
            with self.lock:
                self.active -= 1


def _twice_at_once(call: object) -> list[object]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda _: call(), range(2)))  # type: ignore[operator]


def test_two_codebook_saves_at_once_write_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from storage.blob_writer import BlobWriter
    from storage.reader import verify_shard
    from storage.store import Store
    from tasks.speech_codebook import save_speech_codebook

    overlap = _Overlap(BlobWriter._add)
    monkeypatch.setattr(BlobWriter, "_add", lambda self, key, sample: overlap(self, key, sample))
    store, centroids = Store(str(tmp_path / "store")), np.arange(12, dtype=np.float32).reshape(4, 3)
    refs = _twice_at_once(lambda: save_speech_codebook(store, centroids, {"extractor_fingerprint": "e"}))
    assert len({ref.codebook_id for ref in refs}) == 1  # type: ignore[attr-defined]
    assert (overlap.calls, overlap.most) == (2, 1)  # centroids.npy + meta.json, by one writer only
    version = current_version(store, "_shared", "speech-codebook")
    assert version is not None and verify_shard(version, "all").stored == 2


def test_two_trainers_of_one_run_take_turns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.train as train_module
    from storage.store import StoreRef
    from tasks.train import TrainData, TrainSettings, Vocabulary

    overlap = _Overlap(lambda *args, **kwargs: "done")
    monkeypatch.setattr(train_module, "train", overlap)
    data = TrainData({"coco": "v"}, ("train",))
    settings = TrainSettings(1, 1, 1, 1e-4, 0.0, 0, False, 8, 0, {"hidden_size": 8})
    call = partial(train_module.train_task.fn, StoreRef(str(tmp_path)), data, settings, Vocabulary(8, 4), "cpu", None)
    assert _twice_at_once(call) == ["done", "done"]
    assert (overlap.calls, overlap.most) == (2, 1)
