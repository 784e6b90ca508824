"""Shard tasks on an external Dask cluster: a real ``dask scheduler`` and two ``dask worker`` processes.

The stores they write must be byte-identical (timestamps in metadata aside) to those of a local run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.config import PipelineConfig
from tests.processes import start, stop
from tests.store_compare import differences, snapshot
from tests.tiny_datasets import coco_entry, tiny_config, write_coco

pytestmark = pytest.mark.timeout(600)

_BIN = Path(sys.executable).parent


def _complete(scheduler_file: Path) -> bool:
    try:
        return "address" in json.loads(scheduler_file.read_text())
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler on 127.0.0.1 (port chosen by the OS, read from its scheduler file) and two workers."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    common = ["--no-dashboard"]
    env = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "warning"}
    processes = [
        start(
            [str(_BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file",
             str(scheduler_file), *common],
            env,
            folder / "scheduler.log",
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _complete(scheduler_file):
            assert processes[0].poll() is None, (folder / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            time.sleep(0.2)
        for n in range(2):
            processes.append(
                start(
                    [str(_BIN / "dask"), "worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                     "--nworkers", "1", "--nthreads", "1", "--name", f"worker-{n}", *common],
                    env,
                    folder / f"worker-{n}.log",
                )
            )  # fmt: skip
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(2, timeout=120)
            address = str(client.scheduler.address)
        yield address
    finally:
        for process in reversed(processes):
            stop(process)


def _run_units(config: PipelineConfig) -> None:
    from flows.build_manifests import build_manifests_flow
    from flows.extract_speech_features import extract_speech_features_flow
    from flows.learn_image_codebook import learn_image_codebook_flow
    from flows.learn_speech_codebook import learn_speech_codebook_flow
    from flows.tokenize_images import tokenize_images_flow
    from flows.unitize_speech import unitize_speech_flow

    build_manifests_flow(config)
    learn_image_codebook_flow(config)
    tokenize_images_flow(config)
    extract_speech_features_flow(config)
    learn_speech_codebook_flow(config)
    unitize_speech_flow(config)


def _executed(address: str) -> dict[str, int]:
    from distributed import Client

    def count(dask_worker: Any) -> int:
        return int(dask_worker.state.executed_count)

    with Client(address, timeout=30) as client:  # type: ignore[no-untyped-call]
        return {str(k): int(v) for k, v in client.run(count).items()}


def test_external_cluster_writes_the_stores_of_a_local_run(
    tmp_path: Path, dask_cluster: str, prefect_harness: None
) -> None:
    entries = [coco_entry(i, ("train", "val", "test")[i % 3], [f"Caption {i}.", f"Other {i}."]) for i in range(1, 7)]
    write_coco(tmp_path / "coco", entries)  # one dataset root: manifests record it
    before = _executed(dask_cluster)
    _run_units(tiny_config(tmp_path, {"store": {"url": "local"}}, shard_size=2))
    runner = {"kind": "dask", "address": dask_cluster}
    _run_units(tiny_config(tmp_path, {"store": {"url": "dask"}, "runner": runner}, shard_size=2))
    _run_units(tiny_config(tmp_path, {"store": {"url": "cluster"}, "runner": {"kind": "dask"}}, shard_size=2))
    ran = {worker: n - before.get(worker, 0) for worker, n in _executed(dask_cluster).items()}
    # 1 manifests task + 3 shards × (tokenize, extract, unitize) = 10 tasks, spread over both workers
    assert sum(ran.values()) >= 10 and all(n > 0 for n in ran.values()), ran
    local = snapshot(tmp_path / "local")
    assert any(key.startswith("coco/image-units/") for key in local)
    assert any(key.startswith("coco/speech-units/") for key in local)
    assert differences(local, snapshot(tmp_path / "dask")) == []  # external cluster
    assert differences(local, snapshot(tmp_path / "cluster")) == []  # a LocalCluster started by the flows


def test_gpu_tasks_ask_for_the_gpu_resource() -> None:
    from dask.base import get_annotations

    from flows.runner import ShardRunner

    class Recorder:
        def __init__(self) -> None:
            self.seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

        def submit(self, task: object, parameters: dict[str, Any]) -> None:
            self.seen.append((parameters, dict(get_annotations())))

    recorder = Recorder()
    ShardRunner(recorder, {"GPU": 1.0}).bind("task", a=1)(b=2)
    ShardRunner(recorder, None).bind("task", a=1)(b=3)
    assert recorder.seen == [({"a": 1, "b": 2}, {"resources": {"GPU": 1.0}}), ({"a": 1, "b": 3}, {})]


@pytest.mark.parametrize(
    ("runner", "device", "uses_device", "expected"),
    [
        ({"kind": "dask", "address": "tcp://127.0.0.1:1"}, "cuda", True, {"GPU": 1.0}),
        ({"kind": "dask", "address": "tcp://127.0.0.1:1"}, "cuda", False, None),
        ({"kind": "dask", "address": "tcp://127.0.0.1:1"}, "cpu", True, None),
        ({"kind": "dask", "address": "tcp://127.0.0.1:1", "gpu_resources": {"A100": 2}}, "cuda", True, {"A100": 2.0}),
        ({"kind": "local"}, "cuda", True, None),
    ],
)
def test_which_tasks_carry_the_annotation(
    tmp_path: Path, runner: dict[str, Any], device: str, uses_device: bool, expected: dict[str, float] | None
) -> None:
    from flows.runner import gpu_annotation

    config = tiny_config(tmp_path, {"runner": runner})
    assert gpu_annotation(config.model_copy(update={"device": device}), uses_device=uses_device) == expected


def test_a_cluster_class_named_in_the_config_runs_the_shard_tasks(tmp_path: Path, prefect_harness: None) -> None:
    from flows.build_manifests import build_manifests_flow

    write_coco(tmp_path / "coco", [coco_entry(1, "train", ["A dog."]), coco_entry(2, "test", ["A cat."])])
    runner = {
        "kind": "dask",
        "cluster_class": "distributed.LocalCluster",  # as dask_kubernetes.operator.KubeCluster would be named
        "cluster_kwargs": {"n_workers": 1, "processes": False, "dashboard_address": None},
        "adapt": {"minimum": 1, "maximum": 2},
    }
    (result,) = build_manifests_flow(tiny_config(tmp_path, {"runner": runner}))
    assert result.counts["images"]["ok"] == 2


def test_runner_config_refuses_cluster_options_with_an_address(tmp_path: Path) -> None:
    from storage.errors import ConfigError

    with pytest.raises(ConfigError, match="names a running cluster"):
        tiny_config(tmp_path, {"runner": {"kind": "dask", "address": "tcp://h:8786", "adapt": {"maximum": 4}}})
