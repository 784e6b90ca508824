"""Integration: a real Prefect server, ``im2sp serve``, runs through the Prefect CLI, the codebook event.

A deployment runs through ``prefect deployment run``, artifacts are read back through the API, and a new
codebook's ``im2sp.codebook.updated`` event must make retokenize-images switch the pointer.

Everything runs in subprocesses with a private PREFECT_HOME (SQLite) on 127.0.0.1; the test stops its own
processes by process group and leaves nothing running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.processes import ROOT, free_port, start, stop

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(900)


def _wait_for(check: Callable[[], Any], what: str, timeout: float, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (httpx.HTTPError, OSError, KeyError, ValueError):
            found = None
        if found:
            return found
        time.sleep(1)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}" for log in logs if log.exists())
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """A real Prefect server on 127.0.0.1 with its own home and SQLite database."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_UI_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
    }
    log = home / "server.log"
    process = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        _wait_for(lambda: httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).json(), "the server", 90, [log])
        yield env, home
    finally:
        stop(process)


def _config(sample: Path, store: Path, target: Path, **image_tokenizer: Any) -> Path:
    document = yaml.safe_load((sample / "pipeline.yaml").read_text())
    document["store"] = {"url": str(store)}
    for spec in document["datasets"].values():
        spec["root"] = str(sample / spec["root"])
    document["image_tokenizer"].update(image_tokenizer)
    document["retokenize"] = {"cron": "0 0 1 1 *", "retention": 2}  # the event, not the schedule, must fire
    target.write_text(yaml.safe_dump(document))
    return target


def _api(env: dict[str, str], path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.post(f"{env['PREFECT_API_URL']}{path}", json=body or {}, timeout=10)
    response.raise_for_status()
    return response.json()


def _current(store: Path, dataset: str) -> str:
    return str(json.loads((store / dataset / "image-units" / "current.json").read_text())["version"])


def test_served_deployments_run_and_a_new_codebook_retokenizes(
    server: tuple[dict[str, str], Path], sample_dir: Path, tmp_path: Path
) -> None:
    env, home = server
    store = tmp_path / "store"
    config = _config(sample_dir, store, tmp_path / "pipeline.yaml")
    im2sp = str(BIN / "im2sp")

    def run(*args: str) -> str:
        done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    run(im2sp, "run", "build-manifests", "--config", str(config))
    run(im2sp, "run", "learn-image-codebook", "--config", str(config))
    serve_log = tmp_path / "serve.log"
    serve = start([im2sp, "serve", "--config", str(config)], env, serve_log)
    logs = [serve_log, home / "server.log"]
    try:
        from flows.registry import FLOWS

        _wait_for(
            lambda: {d["name"] for d in _api(env, "/deployments/filter")} == set(FLOWS),
            "im2sp serve to register a deployment per flow",
            120,
            logs,
        )

        out = run(str(BIN / "prefect"), "deployment", "run", "tokenize-images/tokenize-images", "--watch")
        assert "Completed" in out
        first = _current(store, "coco")
        assert (store / "flickr8k" / "image-units" / "current.json").exists()
        out = run(str(BIN / "prefect"), "deployment", "run", "storage-report/storage-report", "--watch")
        assert "Completed" in out
        keys = {a["key"] for a in _api(env, "/artifacts/filter") if a.get("key")}
        assert {"tokenize-images-coco", "storage-report", "storage-report-summary"} <= keys
        assert "storage-report" in run(str(BIN / "prefect"), "artifact", "ls")
        assert list((store / "reports" / "storage").glob("*.png"))

        # A new codebook (another seed) emits im2sp.codebook.updated; the trigger must re-tokenize.
        newer = _config(sample_dir, store, tmp_path / "pipeline-seed-1.yaml", seed=1)
        run(im2sp, "run", "learn-image-codebook", "--config", str(newer))
        second = _wait_for(
            lambda: _current(store, "coco") != first and _current(store, "coco"), "the event to re-tokenize", 180, logs
        )
        runs = _api(env, "/flow_runs/filter", {"deployments": {"name": {"any_": ["retokenize-images"]}}})
        fired = [r for r in runs if r["parameters"].get("codebook_id") == second and r["parameters"].get("kind")]
        assert fired, "retokenize-images ran with the event's codebook id"
        _wait_for(lambda: fired and _current(store, "flickr8k") == second, "flickr8k re-tokenized", 120, logs)
        assert {p.name for p in (store / "coco" / "image-units").iterdir() if p.is_dir()} == {first, second}
    finally:
        stop(serve)
