"""The compose stack for real: docker/compose.yaml with docker/compose.test.yaml, driven as a user would.

Run by ``make test-compose`` (docker/test-compose.sh builds the images and provides the engine), skipped
otherwise. Every service is on the host's network, bound to 127.0.0.1 on ports picked here. The sample data is
run through the stack's Prefect server with ``prefect deployment run`` (shard tasks on the stack's Dask
workers) and with ``im2sp run`` on the host; the image units must be the same bytes. Then the faults: the
container serving the deployments killed mid-run, and Postgres stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.processes import ROOT, free_port
from tests.store_compare import differences, snapshot

BIN = Path(sys.executable).parent
#: ``im2sp`` from this checkout's sources (run in ROOT), whichever checkout the environment was installed from.
IM2SP = [sys.executable, "-c", "from flows.cli import main; main()"]
DOCKER = os.environ.get("DOCKER", "docker")
AUTH = ("admin", "api-secret")
PASSWORD = "pg-secret"
CONTAINER_UID = 1000  # the images' user im2sp
DATASETS = ("coco", "flickr8k")
pytestmark = [
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.environ.get("IM2SP_COMPOSE_TEST") != "1", reason="needs Docker: make test-compose"),
]


@dataclass
class Stack:
    """The running stack: its compose command, environment, folder and endpoints."""

    compose: list[str]
    env: dict[str, str]
    data: Path
    api: str
    scheduler: str
    pg_port: int

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command with the stack's client environment; with ``check``, it must succeed."""
        done = subprocess.run(args, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def container(self, service: str) -> str:
        """The id of a service's (first) container."""
        return self.run(*self.compose, "ps", "-q", service).stdout.split()[0]

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """A call to the stack's Prefect API, with its credentials."""
        response = httpx.post(f"{self.api}{path}", json=body or {}, auth=AUTH, timeout=10)
        response.raise_for_status()
        return response.json()

    def logs(self) -> str:
        """The last lines of every service's log."""
        return self.run(*self.compose, "logs", "--no-color", "--tail", "40", check=False).stdout


def _wait_for(check: Callable[[], Any], what: str, timeout: float, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (httpx.HTTPError, OSError, KeyError, ValueError, IndexError):
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{stack.logs()[-8000:]}")


def _write_config(sample: Path, target: Path, store: Path, runner: dict[str, Any]) -> Path:
    document = yaml.safe_load((sample / "pipeline.yaml").read_text())
    document["store"] = {"url": str(store)}
    for spec in document["datasets"].values():
        spec["root"] = str(sample / spec["root"])  # manifests record the roots: the same paths everywhere
    document["runner"] = runner
    target.write_text(yaml.safe_dump(document))
    return target


def _host_run(data: Path, config: Path) -> None:
    """The same flows with ``im2sp run`` on the host: threads, ephemeral Prefect."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(data / "host-prefect")
    for flow in ("build-manifests", "learn-image-codebook", "tokenize-images"):
        done = subprocess.run([*IM2SP, "run", flow, "--config", str(config)], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, f"im2sp run {flow} on the host failed:\n{done.stdout[-3000:]}{done.stderr}"


def _rendered(env: dict[str, str], target: Path) -> Path:
    """compose.yaml with the test override, less the published ports (Docker refuses them with host networking)."""
    override = [str(ROOT / "docker" / name) for name in ("compose.yaml", "compose.test.yaml")]
    done = subprocess.run(["docker-compose", "-f", override[0], "-f", override[1], "config"], env=env,
                          cwd=ROOT / "docker", capture_output=True, text=True, check=True)  # fmt: skip
    document = yaml.safe_load(done.stdout)
    for service in document["services"].values():
        if service.get("network_mode") == "host":
            service.pop("ports", None)
    target.write_text(yaml.safe_dump(document))
    return target


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The stack up on 127.0.0.1, serving every deployment; taken down (volumes too) at the end."""
    from storage.sample.build import write_sample_data

    data = Path(tempfile.mkdtemp(prefix="im2sp-compose-"))
    data.chmod(0o755)  # the containers' user reads the sample and writes its store here
    write_sample_data(data / "sample")
    (data / "stack-store").mkdir()
    os.chown(data / "stack-store", CONTAINER_UID, CONTAINER_UID)
    ports = {name: free_port() for name in ("PG", "PREFECT", "SCHEDULER", "DASHBOARD")}
    scheduler = f"tcp://127.0.0.1:{ports['SCHEDULER']}"
    _write_config(data / "sample", data / "stack.yaml", data / "stack-store", {"kind": "dask", "address": scheduler})
    host_config = _write_config(data / "sample", data / "host.yaml", data / "host-store", {"kind": "local"})
    api = f"http://127.0.0.1:{ports['PREFECT']}/api"
    env = {
        **os.environ,
        **{f"IM2SP_{name}_PORT": str(port) for name, port in ports.items()},
        "IM2SP_TEST_DATA": str(data),
        "POSTGRES_PASSWORD": PASSWORD,
        "PREFECT_AUTH_STRING": ":".join(AUTH),
        "PREFECT_API_URL": api,
        "PREFECT_API_AUTH_STRING": ":".join(AUTH),
        "PREFECT_HOME": str(data / "client-prefect"),
    }
    compose = [shutil.which("docker-compose") or "docker-compose", "-p", f"im2sp-test-{uuid.uuid4().hex[:8]}"]
    compose += ["-f", str(_rendered(env, data / "compose.yaml"))]
    running = Stack(compose, env, data, api, scheduler, ports["PG"])
    try:
        running.run(*compose, "up", "-d", "--no-build", timeout=600)
        _host_run(data, host_config)  # while the stack starts
        from flows.registry import FLOWS

        _wait_for(lambda: {d["name"] for d in running.post("/deployments/filter")} == set(FLOWS),
                  "im2sp serve to register a deployment per flow", 300, running)  # fmt: skip
        yield running
    finally:
        running.run(*compose, "down", "-v", "--remove-orphans", "-t", "10", check=False)
        if not os.environ.get("IM2SP_COMPOSE_KEEP"):
            shutil.rmtree(data, ignore_errors=True)


def _image_units(store: Path) -> dict[str, str]:
    return {f"{ds}/{key}": digest for ds in DATASETS for key, digest in snapshot(store, f"{ds}/image-units").items()}


def _same_image_units(stack: Stack) -> None:
    stored, expected = (_image_units(stack.data / store) for store in ("stack-store", "host-store"))
    assert stored and expected, (sorted(stored)[:5], sorted(expected)[:5])
    assert differences(stored, expected) == []


def _deployment_run(stack: Stack, flow: str) -> None:
    out = stack.run(str(BIN / "prefect"), "deployment", "run", f"{flow}/{flow}", "--watch").stdout
    assert "Completed" in out, out[-3000:]


def _executed(address: str) -> int:
    from distributed import Client

    def count(dask_worker: Any) -> int:
        return int(dask_worker.state.executed_count)

    with Client(address, timeout=30) as client:  # type: ignore[no-untyped-call]
        return sum(int(n) for n in client.run(count).values())


def test_deployments_run_on_the_stack_and_write_the_hosts_bytes(stack: Stack) -> None:
    for flow in ("build-manifests", "learn-image-codebook", "tokenize-images", "storage-report"):
        _deployment_run(stack, flow)
    states = [run["state_type"] for run in stack.post("/flow_runs/filter") if run.get("deployment_id")]
    assert states.count("COMPLETED") >= 4 and not {"FAILED", "CRASHED"} & set(states), states
    assert _executed(stack.scheduler) > 0, "the shard tasks ran on the stack's Dask workers"
    _same_image_units(stack)
    # The artifact is in the server's Postgres, not in a SQLite file of the server's container.
    url = f"postgresql://prefect:{PASSWORD}@127.0.0.1:{stack.pg_port}/prefect"
    query = "SELECT count(*) FROM artifact WHERE key = 'storage-report'"
    found = stack.run(*stack.compose, "exec", "-T", "postgres", "psql", url, "-tAc", query).stdout
    assert int(found.strip()) >= 1


def _flow_run_state(stack: Stack, flow_run_id: str) -> str:
    return str(stack.post("/flow_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})[0]["state_type"])


def test_a_killed_serving_container_and_a_rerun_give_the_same_store(stack: Stack) -> None:
    store = stack.data / "stack-store"
    for dataset in DATASETS:  # tokenize again from nothing, so that the kill lands in a run with work to do
        shutil.rmtree(store / dataset / "image-units")
    out = stack.run(str(BIN / "prefect"), "deployment", "run", "tokenize-images/tokenize-images").stdout
    flow_run_id = out.split("UUID:")[1].split()[0]
    _wait_for(lambda: _flow_run_state(stack, flow_run_id) == "RUNNING", "the flow run to start", 120, stack)
    serving = stack.container("im2sp")
    stack.run(DOCKER, "kill", serving)
    stack.run(DOCKER, "start", serving)
    # The killed run stays Running and keeps the deployment's one-at-a-time slot until Prefect's lease ends
    # (5 minutes): mark it Crashed, as an operator would in the UI (docker/README.md), to rerun at once.
    crashed = {"type": "CRASHED", "message": "its serving container was killed"}
    stack.post(f"/flow_runs/{flow_run_id}/set_state", {"state": crashed, "force": True})
    _deployment_run(stack, "tokenize-images")
    _same_image_units(stack)


def test_stopped_postgres_fails_the_run_in_one_line_and_leaves_the_store(stack: Stack) -> None:
    store = stack.data / "stack-store"
    before = snapshot(store)
    stack.run(*stack.compose, "stop", "postgres")
    try:
        done = stack.run(*IM2SP, "run", "tokenize-images", "--config", str(stack.data / "stack.yaml"),
                         check=False)  # fmt: skip
        assert done.returncode != 0
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert "Traceback" not in done.stderr and len(lines) == 1 and lines[0].startswith("error:"), lines
        assert differences(before, snapshot(store)) == []
    finally:
        stack.run(*stack.compose, "start", "postgres")
