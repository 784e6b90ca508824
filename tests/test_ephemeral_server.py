"""A killed ``im2sp run`` takes its ephemeral Prefect server with it.

Without ``PREFECT_API_URL``, the first flow run starts a temporary Prefect server in a child process, which
Prefect stops at exit; a SIGKILLed ``im2sp run`` cannot, so the server must die with it on its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.fault_injection import KILL_AT_ENV, command
from tests.processes import ROOT
from tests.tiny_datasets import coco_entry, write_coco

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")


def _group(pgid: int) -> list[int]:
    """The live processes (zombies excluded) of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_a_sigkilled_run_leaves_no_prefect_server(tmp_path: Path) -> None:
    write_coco(tmp_path / "coco", [coco_entry(i, "train", [f"Caption {i}."]) for i in range(1, 4)])
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        yaml.safe_dump(
            {"store": {"url": str(tmp_path / "store")}, "datasets": {"coco": {"kind": "coco", "root": "coco"}}}
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "IM2SP_DEBUG")}
    env.update({"PREFECT_HOME": str(tmp_path / "prefect-home"), KILL_AT_ENV: "1", "PREFECT_LOGGING_LEVEL": "INFO"})
    log = tmp_path / "run.log"
    with log.open("wb") as stream:  # its own session: every process it starts stays in its group
        run = subprocess.Popen(
            command("run", "build-manifests", "--config", str(config)),
            cwd=ROOT,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert run.wait(timeout=300) == -signal.SIGKILL, log.read_text()  # killed at its first store write
        assert "Starting temporary server" in log.read_text(), log.read_text()
        deadline = time.monotonic() + 15
        while _group(run.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _group(run.pid)
        assert not left, f"still running after the kill: {left}\n{log.read_text()}"
    finally:
        if _group(run.pid):
            os.killpg(run.pid, signal.SIGKILL)


def test_the_guarded_server_runs_what_prefect_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """flows/ephemeral_server.py repeats Prefect's uvicorn command: a Prefect upgrade that changes it fails here."""
    from prefect.server.api.server import SubprocessASGIServer

    from flows.ephemeral_server import LAUNCHER, launcher_command, uvicorn_command

    started: list[dict[str, object]] = []
    monkeypatch.setattr(subprocess, "Popen", lambda **kwargs: started.append(kwargs))
    port = 47_123
    server = SubprocessASGIServer(port)
    try:
        server._run_uvicorn_command()
    finally:
        SubprocessASGIServer._instances.pop(port, None)
    command, environment = uvicorn_command(port)
    assert started == [{"args": command, "env": environment}]
    assert launcher_command(command)[:3] == [sys.executable, "-c", LAUNCHER]
    assert launcher_command(command)[3:] == [str(os.getpid()), *command]


def test_the_launcher_execs_its_command_and_passes_its_exit_code() -> None:
    from flows.ephemeral_server import launcher_command

    done = subprocess.run(launcher_command([sys.executable, "-c", "import sys; sys.exit(3)"]), timeout=60)
    assert done.returncode == 3  # Prefect restarts the server on another port when uvicorn exits with 3
