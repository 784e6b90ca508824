"""Crash-resume: every shard-writing flow, killed with SIGKILL at seeded random points, then rerun.

Each flow runs as ``im2sp run FLOW`` in a subprocess on a copy of the store as the flows before it left it.
The uninterrupted run counts the store mutations it makes (file writes, Zarr chunk writes, removals); each
kill point is a seeded random mutation number at which the process SIGKILLs itself. The hook is installed by
the tests, not the product: the subprocess is ``python -m tests.fault_injection run FLOW`` (``im2sp`` with the
``Store`` methods wrapped). The rerun must leave the store identical, file for file, to the uninterrupted run's
(timestamps in metadata aside): nothing lost, nothing duplicated, nothing half-written left behind.

``make test`` tries ``IM2SP_CHAOS_POINTS`` (default 2) distinct kill points per flow; ``make test-chaos`` tries 10
(every mutation of a flow that makes fewer).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.fault_injection import COUNT_FILE_ENV, KILL_AT_ENV, ROOT, command
from tests.store_compare import differences, snapshot
from tests.tiny_datasets import coco_entry, tiny_config, write_coco

pytestmark = pytest.mark.timeout(3600)

#: The flows that write shards, in pipeline order (each needs the stores of those before it).
FLOWS = (
    "build-manifests",
    "learn-image-codebook",
    "tokenize-images",
    "extract-speech-features",
    "learn-speech-codebook",
    "unitize-speech",
    "build-training-shards",
)
POINTS = int(os.environ.get("IM2SP_CHAOS_POINTS", "2"))
SEED = int(os.environ.get("IM2SP_CHAOS_SEED", "0"))


@dataclass(frozen=True)
class Point:
    """One kill point: where it struck, whether the process died there, what the rerun left."""

    flow: str
    mutation: int
    of: int
    killed: bool
    files_unfinished: int
    outcome: str


@dataclass
class Chain:
    """The uninterrupted runs: the store before and after each flow, and each flow's mutation count."""

    root: Path
    document: dict[str, Any]
    env: dict[str, str]
    before: dict[str, Path] = field(default_factory=dict)
    after: dict[str, Path] = field(default_factory=dict)
    mutations: dict[str, int] = field(default_factory=dict)
    results: list[Point] = field(default_factory=list)

    def run(self, flow: str, store: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``im2sp run FLOW`` on ``store`` in a subprocess, with the fault-injection hook installed."""
        config = store.parent / f"{store.name}.yaml"
        config.write_text(yaml.safe_dump({**self.document, "store": {"url": str(store)}}))
        return subprocess.run(
            command("run", flow, "--config", str(config)),
            env={**self.env, **(extra_env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Chain]:
    from prefect.settings import PREFECT_API_URL

    root = tmp_path_factory.mktemp("chaos")
    entries = [coco_entry(i, ("train", "val", "test")[i % 3], [f"Caption {i}.", f"Other {i}."]) for i in range(1, 9)]
    write_coco(root / "coco", entries)
    document = tiny_config(root, shard_size=3).model_dump(mode="json")
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_LOGGING_LEVEL": "WARNING"}
    result = Chain(root, document, env)
    store = root / "store-0"
    store.mkdir()
    for n, flow in enumerate(FLOWS, start=1):
        result.before[flow] = store
        after = root / f"store-{n}"
        shutil.copytree(store, after)
        count = root / f"count-{flow}.txt"
        done = result.run(flow, after, {COUNT_FILE_ENV: str(count)})
        assert done.returncode == 0, done.stdout + done.stderr
        result.mutations[flow] = int(count.read_text())
        result.after[flow] = after
        store = after
    yield result
    points = result.results
    killed = sum(p.killed for p in points)
    identical = sum(p.outcome == "identical" for p in points)
    print(f"\nstore mutations per flow: {result.mutations}")
    print(f"crash-resume: {len(points)} kill points, {killed} killed the run, {identical} identical after the rerun")
    for p in points:
        print(f"  {p.flow}: mutation {p.mutation}/{p.of}, killed {p.killed}, {p.files_unfinished} files unfinished")


def test_a_kill_point_kills_the_run(chain: Chain) -> None:
    """The hook fires: a run told to die at its first store mutation ends by SIGKILL (not an ordinary exit)."""
    flow = FLOWS[0]
    store = chain.root / "kill-first"
    shutil.copytree(chain.before[flow], store)
    killed = chain.run(flow, store, {KILL_AT_ENV: "1"})
    assert killed.returncode == -9, killed.stdout + killed.stderr


@pytest.mark.parametrize("flow", FLOWS)
def test_killed_flow_resumes_to_the_uninterrupted_store(chain: Chain, flow: str) -> None:
    total = chain.mutations[flow]
    assert total > 0, f"{flow} made no store mutations"
    expected = snapshot(chain.after[flow])
    rng = np.random.default_rng([SEED, FLOWS.index(flow)])
    # Distinct points; a flow with fewer mutations than POINTS is killed at every one of them.
    points = sorted(int(p) + 1 for p in rng.choice(total, size=min(POINTS, total), replace=False))
    for point in points:
        store = chain.root / f"kill-{flow}-{point}"
        shutil.copytree(chain.before[flow], store)
        killed = chain.run(flow, store, {KILL_AT_ENV: str(point)})
        # Threads make the order of mutations vary a little, so a point near the end may not be reached.
        assert killed.returncode in (-9, 0), killed.stdout + killed.stderr
        left = len(differences(expected, snapshot(store)))  # files missing or not yet final after the kill
        resumed = chain.run(flow, store)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        different = differences(expected, snapshot(store))
        outcome = "identical" if not different else f"differs: {different[:5]}"
        chain.results.append(Point(flow, point, total, killed.returncode == -9, left, outcome))
        assert different == [], f"{flow} killed at mutation {point}/{total}: {different[:10]}"
