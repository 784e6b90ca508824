"""Screenshot of the storage-report artifact as users see it in the Prefect UI (not run in CI).

Starts ``prefect server`` on 127.0.0.1 with a private home, runs ``im2sp demo`` against it (the pipeline ends
with storage-report), opens the ``storage-report-summary`` artifact page in headless Chromium (Debian package
``chromium``) and saves the screenshot, by default to ``docs/storage-report-ui.png``. Stops the server after.
Run: ``.venv/bin/python scripts/ui_screenshot.py [--workdir demo-work] [--out docs/storage-report-ui.png]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    """Start the server, run the demo, screenshot the artifact page, stop the server."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=ROOT / "demo-work")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "storage-report-ui.png")
    parser.add_argument("--artifact", default="storage-report-summary")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="im2sp-ui-"))
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(90):
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        subprocess.run([str(BIN / "im2sp"), "demo", "--workdir", str(args.workdir)], env=env, check=True)
        found = httpx.post(
            f"{api}/artifacts/filter",
            json={"artifacts": {"key": {"any_": [args.artifact]}}, "sort": "CREATED_DESC", "limit": 1},
            timeout=10,
        ).json()
        if not found:
            raise SystemExit(f"no {args.artifact} artifact on the server")
        url = f"http://127.0.0.1:{port}/artifacts/artifact/{found[0]['id']}"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                browser,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1280,1500",
                "--virtual-time-budget=20000",
                f"--screenshot={args.out}",
                url,
            ],
            check=True,
            capture_output=True,
        )
        print(f"{url} → {args.out}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
