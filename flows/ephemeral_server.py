"""The ephemeral Prefect server of ``im2sp run`` dies with the command, even when the command is SIGKILLed.

Without ``PREFECT_API_URL``, Prefect starts a temporary API server (``SubprocessASGIServer``: uvicorn in a child
process) on first use and stops it in an ``atexit`` handler. A SIGKILLed command runs no handler, so its server
lived on, orphaned, holding a port and its ``PREFECT_HOME`` database. On Linux, ``guard_ephemeral_server``
starts that server through a launcher that asks the kernel for a parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGTERM)``) and then execs uvicorn exactly as Prefect would: when the command dies,
however it dies, the kernel sends its server SIGTERM. Nothing has to run in the dying process, and nothing is
left for a later command to clean up.

The kernel ties that signal to the *thread* that started the child, so the server is started here, from the
calling (main) thread, rather than from whichever Prefect thread first needs the API. The first flow run would
start it at once anyway, so the command takes no longer. Other systems keep Prefect's own server unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

#: Run as ``python -c LAUNCHER PARENT_PID PROGRAM ARGS…``: die with SIGTERM when the parent dies, then become
#: ``PROGRAM ARGS…`` (the signal survives the exec). 1 is PR_SET_PDEATHSIG; a parent that died before the
#: prctl would never send the signal, hence the check after it.
LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(0)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def launcher_command(command: list[str]) -> list[str]:
    """``command`` behind the launcher: it gets SIGTERM when this process dies."""
    return [sys.executable, "-c", LAUNCHER, str(os.getpid()), *command]


def uvicorn_command(port: int) -> tuple[list[str], dict[str, str]]:
    """The command and environment with which Prefect 3.9 starts its ephemeral server on ``port``.

    As in ``prefect.server.api.server.SubprocessASGIServer._run_uvicorn_command`` (``tests/test_ephemeral_server.py``
    checks that the two agree).
    """
    import prefect
    from prefect.settings import get_current_settings

    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory"]
    command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "error", "--lifespan", "on"]
    environment = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    return command, environment


def guard_ephemeral_server() -> None:
    """Start the ephemeral server now, from this thread, as a child that dies with this process (Linux).

    A no-op when ``PREFECT_API_URL`` names a server, off Linux, or when the ephemeral server already runs.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or not sys.platform.startswith("linux"):
        return
    from prefect.server.api.server import SubprocessASGIServer

    class GuardedServer(SubprocessASGIServer):
        """Prefect's ephemeral server, started behind the launcher."""

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            assert self.port is not None, "start() picks the port first"
            command, environment = uvicorn_command(self.port)
            return subprocess.Popen(launcher_command(command), env=environment)

    # Prefect keeps one server per port (None: "any free port") and every client asks for SubprocessASGIServer():
    # registering this one first makes it the server they all use.
    server = GuardedServer()
    if isinstance(server, GuardedServer):
        server.start()
