"""A user's mistake through ``im2sp`` is one ``error:`` line and an exit code (2: usage/config, 1: data/store).

Each documented mistake runs the real CLI in a subprocess (the ephemeral Prefect server included, where the
mistake is found inside a flow) and must print no traceback and no Prefect ERROR record.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storage.manifests import build_manifests
from storage.sources.spec import CocoSpec
from storage.store import Store
from tests.tiny_datasets import coco_entry, write_coco

IM2SP = str(Path(sys.executable).parent / "im2sp")
GOOD = "datasets:\n  coco: {kind: coco, root: coco}\nsharding: {shard_size: 2}\n"

#: (case, config text or None for no file, im2sp arguments after the config, exit code, text in the error line)
CASES = [
    ("config file missing", None, ["run", "build-manifests"], 2, "cannot read the config"),
    ("config not YAML", "datasets: [\n", ["run", "build-manifests"], 2, "not valid YAML"),
    ("config key misspelt", GOOD + "sharding: {shard_sise: 2}\n", ["run", "build-manifests"], 2, "shard_sise"),
    ("flow name misspelt", GOOD, ["run", "tokenise-images"], 2, "unknown flow 'tokenise-images'"),
    (
        "dataset root wrong",
        "datasets:\n  coco: {kind: coco, root: cocoa}\n",
        ["run", "build-manifests"],
        1,
        "file not found; check the dataset paths",
    ),
    (
        "speech folder empty",
        "datasets:\n  coco: {kind: coco, root: coco-no-wavs}\n",
        ["run", "build-manifests"],
        1,
        "utterances rejected",
    ),
    (
        "flow before its input",
        "store: {url: store-empty}\n" + GOOD,
        ["run", "learn-image-codebook"],
        1,
        "run build-manifests first",
    ),
    (
        "more codes than patches",
        GOOD + "image_tokenizer: {codebook_size: 4096}\n",
        ["run", "learn-image-codebook"],
        1,
        "lower image_tokenizer.codebook_size",
    ),
    (
        "store protocol unknown",
        'store: {url: "s4://bucket/x"}\n' + GOOD,
        ["report", "storage"],
        2,
        "no filesystem for s4://",
    ),
    ("store is a file", "store: {url: a-file}\n" + GOOD, ["run", "build-manifests"], 1, "check store.url"),
    (
        "speech codebook before features",
        "store: {url: store-empty}\n" + GOOD,
        ["run", "learn-speech-codebook"],
        1,
        "run extract-speech-features first",
    ),
    (
        "checkpoint missing",
        GOOD + "image_tokenizer: {name: vit-vqgan, checkpoint: vqgan.ckpt}\n",
        ["run", "tokenize-images"],
        1,
        "no such checkpoint",
    ),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny COCO datasets, one with its manifests already built in the configs' store."""
    root = tmp_path_factory.mktemp("cli-errors")
    entries = [coco_entry(i, "train" if i % 3 else "test", ["A dog."]) for i in range(1, 7)]
    write_coco(root / "coco", entries)
    (root / "a-file").write_text("not a folder")
    shutil.copytree(root / "coco", root / "coco-no-wavs")
    for wav in (root / "coco-no-wavs" / "SpokenCOCO").rglob("*.wav"):
        wav.unlink()
    build_manifests(Store(str(root / "store")), "coco", CocoSpec(root=root / "coco"), shard_size=2)
    return root


def _im2sp(workdir: Path, args: list[str], *, debug: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IM2SP_DEBUG", "PREFECT_API_URL")}
    env["PREFECT_HOME"] = str(workdir / "prefect-home")
    flags = ["--debug"] if debug else []
    return subprocess.run(
        [IM2SP, *flags, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize(("case", "config", "args", "code", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_user_mistake_is_one_line(
    workdir: Path, case: str, config: str | None, args: list[str], code: int, expected: str
) -> None:
    path = workdir / f"{case.replace(' ', '-')}.yaml"
    if config is not None:
        path.write_text(config)
    done = _im2sp(workdir, [*args, "--config", path.name])
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if "error:" in line.lower()]
    assert "Traceback" not in output and "| ERROR" not in output, output
    assert len(errors) == 1 and errors[0].startswith("error: "), output
    assert expected in errors[0], output
    assert done.returncode == code, output


def test_an_unreachable_prefect_api_is_one_line(workdir: Path) -> None:
    """A server that is down is the machine's to fix (tests/test_compose.py: a server whose database is down)."""
    from tests.processes import free_port

    (workdir / "api-down.yaml").write_text(GOOD)
    url = f"http://127.0.0.1:{free_port()}/api"
    env = {**os.environ, "PREFECT_HOME": str(workdir / "prefect-home"), "PREFECT_API_URL": url}
    env.pop("IM2SP_DEBUG", None)
    done = subprocess.run([IM2SP, "run", "build-manifests", "--config", "api-down.yaml"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: cannot reach the Prefect API at {url}") and "PREFECT_API_URL" in lines[0]


def test_debug_shows_the_traceback(workdir: Path) -> None:
    done = _im2sp(workdir, ["run", "tokenise-images", "--config", "config-file-missing.yaml"], debug=True)
    assert "Traceback" in done.stdout + done.stderr
    assert done.returncode != 0


#: ``im2sp run build-manifests`` with the flow replaced by one that has a bug: an OSError on a path that is
#: neither the store nor a dataset (a file the code itself should have written).
DEFECT = """
import sys
from prefect import flow
import flows.registry

@flow(name="build-manifests")
def broken(config):
    raise FileNotFoundError(2, "No such file or directory", "/nonexistent-im2sp-state/written-earlier.json")

flows.registry.get_flow = lambda name: broken
from flows.cli import main
sys.argv = ["im2sp", "run", "build-manifests", "--config", sys.argv[1]]
main()
"""


def test_an_oserror_from_a_bug_is_reported_as_a_bug(workdir: Path) -> None:
    """Not as a store problem: the traceback stays, the last line says it is a bug, exit code 3."""
    (workdir / "good.yaml").write_text(GOOD)
    env = {k: v for k, v in os.environ.items() if k not in ("IM2SP_DEBUG", "PREFECT_API_URL")}
    env["PREFECT_HOME"] = str(workdir / "prefect-home")
    done = subprocess.run(
        [sys.executable, "-c", DEFECT, "good.yaml"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert "check store.url" not in output and "credentials" not in output, output
    assert "Traceback" in output and "written-earlier.json" in output, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: internal error") and "bug" in last, output
    assert done.returncode == 3, output


def _reported(error: BaseException, *paths: str) -> tuple[int, str]:
    """The exit code and stderr of ``error`` raised inside ``reported()`` (``paths``: the user's paths)."""
    import contextlib
    import io

    import typer

    from flows.cli_errors import reported, user_paths

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(typer.Exit) as exited, reported():
        user_paths(*paths)
        raise error
    return exited.value.exit_code, stderr.getvalue()


@pytest.fixture
def no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IM2SP_DEBUG", raising=False)


@pytest.mark.usefixtures("no_debug")
def test_an_oserror_without_a_path_is_a_bug() -> None:
    code, stderr = _reported(OSError("boom"))
    assert code == 3 and "internal error" in stderr and "boom" in stderr, stderr
    assert "store.url" not in stderr


@pytest.mark.usefixtures("no_debug")
def test_a_missing_file_outside_the_users_paths_is_a_bug(tmp_path: Path) -> None:
    error = FileNotFoundError(2, "No such file or directory", str(tmp_path / "elsewhere" / "x.json"))
    code, stderr = _reported(error, str(tmp_path / "store"), str(tmp_path / "coco"))
    assert code == 3 and "internal error" in stderr, stderr


@pytest.mark.usefixtures("no_debug")
@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device"),
        OSError(30, "Read-only file system"),
        PermissionError(13, "Permission denied", "/somewhere"),
        ConnectionRefusedError(111, "Connection refused"),
        FileNotFoundError(2, "No such file or directory", "STORE/images/x.json"),
        NotADirectoryError(20, "Not a directory", "DATA/coco/images"),
        FileNotFoundError("The specified bucket does not exist"),  # s3fs: no errno, raised from a botocore error
    ],
    ids=["disk full", "read-only", "permission", "unreachable", "under the store", "under a dataset", "s3 bucket"],
)
def test_an_oserror_about_the_store_or_the_data_is_the_users(tmp_path: Path, error: OSError) -> None:
    store, data = str(tmp_path / "store"), str(tmp_path / "data")
    if error.filename:
        error.filename = error.filename.replace("STORE", store).replace("DATA", data)
    if error.errno is None:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        error.__cause__ = ClientError({"Error": {"Code": "NoSuchBucket", "Message": str(error)}}, "ListObjectsV2")
    code, stderr = _reported(error, store, data)
    assert code == 1 and stderr.startswith("error: ") and "internal error" not in stderr, stderr
