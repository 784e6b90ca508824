"""The crash tests' fault injection: every kind of store mutation reaches the hook, and a kill point kills."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from storage.store import Store
from tests.fault_injection import COUNT_FILE_ENV, KILL_AT_ENV, ROOT, install


def test_every_store_mutation_reaches_the_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[None] = []
    install(lambda: calls.append(None), monkeypatch.setattr)
    store = Store(str(tmp_path / "store"))
    store.write_bytes("a.bin", b"a")
    store.write_bytes("a.bin", b"a")  # already holds these bytes: writes nothing, still one mutation
    store.write_json("b.json", {"b": 1})
    with store.open("c.bin", "wb") as stream:
        stream.write(b"c")
    assert len(calls) == 4
    store.read_bytes("a.bin")
    store.open("c.bin").close()
    assert len(calls) == 4  # reads are not mutations
    store.remove("c.bin")
    assert len(calls) == 5
    group = zarr.open_group(store.zarr_store("z"), mode="w", zarr_format=3)
    group.create_array("x", shape=(4,), chunks=(2,), dtype="uint8")[:] = np.arange(4, dtype=np.uint8)
    zarr_sets = len(calls) - 5
    assert zarr_sets == len(list(store.walk_files("z")))  # group + array metadata, two chunks
    array = zarr.open_group(store.zarr_store("z", read_only=True), mode="r")["x"]
    assert isinstance(array, zarr.Array) and np.array_equal(np.asarray(array[:]), np.arange(4))
    assert len(calls) == 5 + zarr_sets


def _run(snippet: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = f"from tests.fault_injection import install_from_env\ninstall_from_env()\n{snippet}"
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True
    )


def test_a_process_dies_by_sigkill_at_its_kill_point(tmp_path: Path) -> None:
    writes = f"from storage.store import Store\ns = Store({str(tmp_path)!r})\nfor k in 'abc': s.write_bytes(k, b'x')"
    count = tmp_path / "count.txt"
    finished = _run(writes, {COUNT_FILE_ENV: str(count)})
    assert finished.returncode == 0, finished.stderr
    assert count.read_text() == "3"
    for key in "abc":
        Store(str(tmp_path)).remove(key)
    killed = _run(writes, {KILL_AT_ENV: "2"})
    assert killed.returncode == -9, killed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "count.txt"]  # killed before the second write
