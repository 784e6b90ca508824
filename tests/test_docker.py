"""docker/: what can be checked without a Docker engine.

Dockerfiles pass hadolint; the compose file passes ``docker-compose config`` (Debian's docker-compose parses
and validates without an engine) and says what the stack needs; the Prefect server settings it uses
(basic auth string, health check) are tried on a real ``prefect server`` here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.processes import ROOT, free_port, start, stop

DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent
SECRETS = {"POSTGRES_PASSWORD": "pg-secret", "PREFECT_AUTH_STRING": "admin:api-secret"}


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda", "Dockerfile.postgres"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    done = subprocess.run([str(BIN / "hadolint"), str(DOCKER / dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (DOCKER / f"{dockerfile}.dockerignore").exists()  # BuildKit's per-Dockerfile ignore file


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("Debian's docker-compose is not installed (apt install docker-compose)")
    return subprocess.run(
        [binary, "-f", str(DOCKER / "compose.yaml"), "config"], capture_output=True, text=True, env=env, cwd=DOCKER
    )


def _rendered() -> dict[str, Any]:
    done = _compose_config({"PATH": os.environ["PATH"], **SECRETS})
    assert done.returncode == 0, done.stderr
    rendered: dict[str, Any] = yaml.safe_load(done.stdout)
    return rendered


def test_compose_stack_validates_and_wires_the_services() -> None:
    services = _rendered()["services"]
    assert set(services) == {"postgres", "prefect-server", "im2sp", "dask-scheduler", "dask-worker", "dask-worker-gpu"}
    server = services["prefect-server"]["environment"]
    assert (
        server["PREFECT_API_DATABASE_CONNECTION_URL"] == "postgresql+asyncpg://prefect:pg-secret@postgres:5432/prefect"
    )
    assert server["PREFECT_SERVER_API_AUTH_STRING"] == "admin:api-secret"
    for name in ("im2sp", "dask-worker", "dask-worker-gpu"):  # they run flows or tasks: API and data access
        environment = services[name]["environment"]
        assert environment["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert environment["PREFECT_API_AUTH_STRING"] == "admin:api-secret"
        assert any("target: /work" in str(v) or ":/work" in str(v) for v in services[name]["volumes"])
    assert services["im2sp"]["command"] == ["serve", "--config", "/work/pipeline.yaml"]
    assert services["dask-worker"]["deploy"]["replicas"] == 2
    gpu = services["dask-worker-gpu"]
    assert "GPU=1" in gpu["entrypoint"] and gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    # The worker's resource matches what GPU tasks ask for by default (flows/runner.py).
    from flows.config import RunnerConfig

    assert RunnerConfig().gpu_resources == {"GPU": 1.0}


def test_the_test_override_puts_every_cpu_service_on_127_0_0_1() -> None:
    """docker/compose.test.yaml (make test-compose): host networking, loopback only, the test's ports."""
    ports = {f"IM2SP_{name}_PORT": str(n) for n, name in enumerate(("PG", "PREFECT", "SCHEDULER", "DASHBOARD"), 41001)}
    env = {"PATH": os.environ["PATH"], **SECRETS, **ports, "IM2SP_TEST_DATA": "/tmp/data"}
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("Debian's docker-compose is not installed (apt install docker-compose)")
    files = ["-f", str(DOCKER / "compose.yaml"), "-f", str(DOCKER / "compose.test.yaml")]
    done = subprocess.run([binary, *files, "config"], capture_output=True, text=True, env=env, cwd=DOCKER)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    for name, service in services.items():
        if name != "dask-worker-gpu":
            assert service["network_mode"] == "host", name
            assert "0.0.0.0" not in json.dumps(service), name
    assert "127.0.0.1:41001/prefect" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert services["im2sp"]["environment"]["PREFECT_API_URL"] == "http://127.0.0.1:41002/api"
    assert "tcp://127.0.0.1:41003" in services["dask-worker"]["entrypoint"]


def test_compose_refuses_to_start_without_its_secrets() -> None:
    done = _compose_config({"PATH": os.environ["PATH"]})
    assert done.returncode != 0 and "set POSTGRES_PASSWORD" in done.stderr + done.stdout


@pytest.mark.timeout(180)
def test_server_settings_of_the_stack_work_on_a_real_prefect_server(tmp_path: Path) -> None:
    server = _rendered()["services"]["prefect-server"]
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_AUTH_STRING": server["environment"]["PREFECT_SERVER_API_AUTH_STRING"],
    }
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "server.log"
    process = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        check = [part.replace("localhost:4200", f"127.0.0.1:{port}") for part in server["healthcheck"]["test"][1:]]
        deadline = time.monotonic() + 120
        while subprocess.run(check, env=env, capture_output=True).returncode != 0:  # the stack's health check
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        url = f"http://127.0.0.1:{port}/api/flows/filter"
        assert httpx.post(url, json={}, timeout=10).status_code == 401  # no credentials
        assert httpx.post(url, json={}, auth=("admin", "wrong"), timeout=10).status_code == 401
        assert httpx.post(url, json={}, auth=("admin", "api-secret"), timeout=10).status_code == 200
    finally:
        stop(process)
