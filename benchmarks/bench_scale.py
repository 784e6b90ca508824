"""The pipeline at COCO + Flickr8k counts: every flow's wall time, peak RSS, Prefect tasks and orchestration overhead.

Synthesises both datasets in their real layouts at their real counts × ``--fraction`` with tiny media
(``benchmarks/scale_data.py``), starts a Prefect server, then runs each step in a fresh process (so peak RSS
is the step's own) at the production shard size: build-manifests, learn-image-codebook, tokenize-images
(patch-vq), extract-speech-features (mfcc, ``keep: sample``), learn-speech-codebook, unitize-speech,
build-training-shards, storage-report, ``im2sp verify``, then a no-op rerun of every flow (``NAME-noop``).

Per step: ``seconds`` (wall, the flow call alone), ``peak_rss_mib`` (the process's), ``tasks`` (task runs the
server recorded), ``overhead_seconds`` (wall time in which no shard function ran: orchestration; null for steps
without shard functions). Run from the repository root with the project's venv:
``.venv/bin/python -m benchmarks.bench_scale --fraction 0.02 --json scale-0.02.json [--workdir DIR]``;
``--compare A.json B.json`` prints each step's seconds-per-item growth from A to B; ``--steps a,b`` runs only
those steps (``plan-shards``, not run by default, times planning every shard flow's jobs from the manifests).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from benchmarks.scale_data import write_datasets

SHARD_SIZE = 1024
#: Steps in order; each names the plain functions (module, attribute) its tasks run: the shard work.
STEPS: dict[str, list[tuple[str, str]]] = {
    "build-manifests": [("tasks.manifests", "build_manifests")],
    "learn-image-codebook": [("tasks.image_codebook", "learn_image_codebook")],
    "tokenize-images": [("tasks.image_units", "tokenize_shard"), ("tasks.image_preview", "check_reconstruction")],
    "extract-speech-features": [("tasks.speech_features", "extract_shard")],
    "learn-speech-codebook": [("tasks.speech_codebook", "learn_speech_codebook")],
    "unitize-speech": [("tasks.speech_units", "unitize_shard")],
    "build-training-shards": [("tasks.training_shards", "build_training_shard")],
    "storage-report": [],
}
#: Which items a step works through (for seconds per item).
IMAGE_STEPS = {"learn-image-codebook", "tokenize-images"}
SPEECH_STEPS = {"extract-speech-features", "learn-speech-codebook", "unitize-speech"}


def pipeline_config(workdir: Path) -> dict[str, Any]:
    """The config the benchmark runs: production shard size, weight-free models, local threads."""
    return {
        "store": {"url": "store"},
        "datasets": {
            "coco": {"kind": "coco", "root": "data/coco"},
            "flickr8k": {"kind": "flickr8k", "root": "data/flickr8k"},
        },
        "image_tokenizer": {"name": "patch-vq", "codebook_size": 512},
        "speech": {"features": "mfcc", "clusters": 200, "keep": "sample", "sample_fraction": 0.1},
        "sharding": {"shard_size": SHARD_SIZE},
        "device": "cpu",
        "runner": {"kind": "local", "workers": 2},
    }


class WorkClock:
    """Records when shard functions run (any thread) so the time in which none ran can be told apart."""

    def __init__(self) -> None:
        self.intervals: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, timed."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.intervals.append((start, time.perf_counter()))

        return timed

    def covered(self) -> float:
        """Seconds in which at least one shard function ran (the union of the intervals)."""
        total, end = 0.0, float("-inf")
        for start, stop in sorted(self.intervals):
            if stop <= end:
                continue
            total += stop - max(start, end)
            end = stop
        return total


def _task_count(api: str) -> int:
    import httpx

    return int(httpx.post(f"{api}/task_runs/count", json={}, timeout=60).json())


def _settled_task_count(api: str) -> int:
    """Task runs recorded so far, once the server has caught up (runs are recorded from events)."""
    last = _task_count(api)
    for _ in range(60):
        time.sleep(1.0)
        now = _task_count(api)
        if now == last:
            return now
        last = now
    return last


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started its program, in MiB.

    Read from ``VmHWM`` (the high-water mark of this program's own memory map). ``ru_maxrss`` would not do:
    Linux carries the parent's peak into a child across fork and exec, so every step would report at least
    what the benchmark's own process once held (1.3 GiB after writing the full-count data).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: kilobytes there too on BSD


def run_step(step: str, config_path: Path) -> dict[str, Any]:
    """Run one step in this process; return its measurements."""
    from flows.config import load_config
    from flows.registry import get_flow

    config = load_config(config_path)
    api = os.environ["PREFECT_API_URL"]
    flow_name = step.removesuffix("-noop")
    clock = WorkClock()
    for module_name, attribute in STEPS.get(flow_name, []):
        module = importlib.import_module(module_name)
        setattr(module, attribute, clock.wrap(getattr(module, attribute)))
    before = _task_count(api)
    start = time.perf_counter()
    if flow_name == "plan-shards":  # what every shard flow does first: its jobs from the manifests
        from flows.sharded import manifest_jobs

        planned = [
            len(manifest_jobs(config.store.open(), dataset, modality)[1])
            for dataset in config.datasets
            for modality in ("image", "speech")
        ]
        extra: dict[str, Any] = {"shards_planned": sum(planned)}
    elif flow_name == "verify":
        from storage.verify import verify_store

        report = verify_store(config.store.open(), config.datasets, flag=True)
        if report.damaged:
            raise SystemExit(f"verify found {len(report.damaged)} damaged shard(s)")
        extra = {"shards_checked": report.shards}
    else:
        get_flow(flow_name)(config)
        extra = {}
    seconds = time.perf_counter() - start
    has_work = bool(STEPS.get(flow_name))
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "tasks": _settled_task_count(api) - before,
        "overhead_seconds": round(seconds - clock.covered(), 3) if has_work else None,
        **extra,
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """A Prefect server on a free local port (its database under ``home``); wait until it is healthy."""
    import httpx

    port = _free_port()
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api"
    for _ in range(240):
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return server, api
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"the Prefect server did not start; see {home / 'server.log'}")


def _items(step: str, images: int, utterances: int) -> int:
    flow_name = step.removesuffix("-noop")
    if flow_name in IMAGE_STEPS:
        return images
    if flow_name in SPEECH_STEPS:
        return utterances
    return images + utterances


def run_all(fraction: float, workdir: Path, only: list[str] | None = None) -> dict[str, Any]:
    """Synthesise, start a server, run every step (or the ``only`` ones, in order) in child processes."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sizes = write_datasets(workdir / "data", fraction)
    print(f"data: {sizes} ({time.perf_counter() - started:.0f} s)", flush=True)
    shutil.rmtree(workdir / "store", ignore_errors=True)
    home = workdir / "prefect-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    config_path = workdir / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(pipeline_config(workdir), sort_keys=False))
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
    }
    server, api = start_server(home, env)
    env["PREFECT_API_URL"] = api
    steps: dict[str, dict[str, Any]] = {}
    try:
        names = only or [*STEPS, "verify", *(f"{name}-noop" for name in STEPS)]
        for step in names:
            command = [sys.executable, "-m", "benchmarks.bench_scale", "--step", step, "--config", str(config_path)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{step} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
            steps[step] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{step:28s} {json.dumps(steps[step])}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    from flows.config import load_config
    from flows.report import measure_storage

    images = sizes["coco_images"] + sizes["flickr_images"]
    utterances = sizes["coco_utterances"] + sizes["flickr_utterances"]
    return {
        "fraction": fraction,
        "images": images,
        "utterances": utterances,
        "steps": steps,
        "storage": measure_storage(load_config(config_path)).document(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {_memory_gib():.0f} GiB",
        "date": time.strftime("%Y-%m-%d"),
    }


def _memory_gib() -> float:
    first = Path("/proc/meminfo").read_text().splitlines()[0]  # MemTotal: N kB
    return int(first.split()[1]) / 2**20


def summary(result: dict[str, Any]) -> list[str]:
    """Lines: the targets that can be read off one run."""
    steps = result["steps"]
    full = sum(v["seconds"] for k, v in steps.items() if not k.endswith("-noop"))
    noop = sum(v["seconds"] for k, v in steps.items() if k.endswith("-noop"))
    lines = [f"full run {full / 60:.1f} min; no-op reruns {noop:.1f} s = {noop / full:.2%} of it (target ≤ 2 %)"]
    peak = max(steps.items(), key=lambda kv: kv[1]["peak_rss_mib"])
    lines.append(f"highest peak RSS: {peak[0]} {peak[1]['peak_rss_mib']:.0f} MiB (target ≤ 2048 at full counts)")
    for name in ("tokenize-images", "extract-speech-features", "unitize-speech", "build-training-shards"):
        step = steps[name]
        lines.append(f"{name}: overhead {step['overhead_seconds'] / step['seconds']:.1%} of {step['seconds']:.0f} s")
    for name in ("storage-report", "verify"):
        lines.append(f"{name}: {steps[name]['seconds']:.1f} s (target ≤ 60 s at full counts)")
    return lines


def compare(small: dict[str, Any], large: dict[str, Any]) -> list[str]:
    """A markdown table: each step at both fractions, its seconds-per-item growth (target ≤ 1.2), RSS, overhead."""
    a, b = small["fraction"], large["fraction"]
    lines = [
        f"| step | s at F = {a} | s at F = {b} | ms/item | growth (≤ 1.2) | peak RSS MiB | tasks | overhead |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for step, measured in large["steps"].items():
        before = small["steps"][step]
        per_before = before["seconds"] / _items(step, small["images"], small["utterances"])
        per_after = measured["seconds"] / _items(step, large["images"], large["utterances"])
        overhead = measured["overhead_seconds"]
        share = f"{overhead / measured['seconds']:.1%}" if overhead is not None else "–"
        lines.append(
            f"| {step} | {before['seconds']:.1f} | {measured['seconds']:.1f} | {per_before * 1e3:.3f} → "
            f"{per_after * 1e3:.3f} | ×{per_after / per_before:.2f} | {before['peak_rss_mib']:.0f} → "
            f"{measured['peak_rss_mib']:.0f} | {before['tasks']} → {measured['tasks']} | {share} |"
        )
    return lines


def main() -> None:
    """Parse the options; run the whole benchmark, one step (a child) or a comparison."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--fraction", type=float, default=0.02)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--step")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path)
    parser.add_argument("--steps", help="comma-separated steps to run (default: all, then every no-op rerun)")
    args = parser.parse_args()
    if args.step:
        print(json.dumps(run_step(args.step, args.config)))
        return
    if args.compare:
        small, large = (json.loads(path.read_text()) for path in args.compare)
        print("\n".join(compare(small, large)))
        return
    workdir = args.workdir or Path(f"scale-work/{args.fraction}")
    result = run_all(args.fraction, workdir, args.steps.split(",") if args.steps else None)
    if not args.steps:
        print("\n".join(summary(result)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
