"""Fault injection for the crash tests, installed by the tests: production code carries none.

``install`` wraps the ``Store`` methods that change a store so that a hook runs before each mutation:
``write_bytes`` (and so ``write_json``), ``open`` for writing, ``remove``, and every key that a writable local
Zarr store from ``zarr_store`` sets (chunks and metadata). The hook runs before the mutation acts, also when
``write_bytes`` then finds the file already holding its bytes, so each flow's count is the same on a rerun.

Run as ``python -m tests.fault_injection run FLOW --config FILE`` (the ``im2sp`` CLI with the hook installed):
``IM2SP_FAULT_COUNT_FILE`` gets the number of mutations the process made, written at exit, and
``IM2SP_FAULT_KILL_AT=N`` makes the process SIGKILL itself at its N-th mutation (1-based), before it acts.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zarr.storage

from storage.store import Store

#: SIGKILL the process at its N-th store mutation (1-based).
KILL_AT_ENV = "IM2SP_FAULT_KILL_AT"
#: Write the process's number of store mutations to this file at exit.
COUNT_FILE_ENV = "IM2SP_FAULT_COUNT_FILE"
#: The repository root: ``python -m tests.fault_injection`` must run there.
ROOT = Path(__file__).resolve().parents[1]

Hook = Callable[[], None]
Patch = Callable[[Any, str, Any], None]


def command(*args: str) -> list[str]:
    """The command line of ``im2sp ARGS`` with the hook installed (run it with ``cwd=ROOT``)."""
    return [sys.executable, "-m", "tests.fault_injection", *args]


class MutationCounter:
    """Numbers a process's store mutations (from any thread) and SIGKILLs it at a chosen one.

    Args:
        kill_at: The 1-based number of the mutation to die at, or ``None`` to only count.
    """

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at = kill_at
        self.total = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.total += 1
            if self.total == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)


def _hooked_local_store(hook: Hook) -> type[zarr.storage.LocalStore]:
    """A Zarr LocalStore class that calls ``hook`` before it sets any key (a chunk or a metadata document)."""

    class HookedLocalStore(zarr.storage.LocalStore):
        async def set(self, key: str, value: Any) -> None:
            hook()
            await super().set(key, value)

    return HookedLocalStore


def install(hook: Hook, patch: Patch = setattr) -> None:
    """Call ``hook`` before every mutation that any ``Store`` of this process makes.

    Args:
        hook: Called with no arguments, in the thread that is about to change the store.
        patch: How to replace a class attribute: ``setattr`` for good (a subprocess), or pytest's
            ``monkeypatch.setattr`` to undo it after a test.
    """
    write_bytes, open_, remove, zarr_store = Store.write_bytes, Store.open, Store.remove, Store.zarr_store
    hooked_local_store = _hooked_local_store(hook)

    @functools.wraps(write_bytes)
    def hooked_write_bytes(self: Store, key: str, data: bytes) -> None:
        hook()
        write_bytes(self, key, data)

    @functools.wraps(open_)
    def hooked_open(self: Store, key: str, mode: str = "rb") -> Any:
        if "w" in mode:
            hook()
        return open_(self, key, mode)

    @functools.wraps(remove)
    def hooked_remove(self: Store, key: str) -> None:
        hook()
        remove(self, key)

    @functools.wraps(zarr_store)
    def hooked_zarr_store(self: Store, key: str, *, read_only: bool = False) -> Any:
        store = zarr_store(self, key, read_only=read_only)
        if read_only or not isinstance(store, zarr.storage.LocalStore):
            return store  # the crash tests' stores are local folders; remote Zarr writes are not hooked
        return hooked_local_store(store.root)

    patch(Store, "write_bytes", hooked_write_bytes)
    patch(Store, "open", hooked_open)
    patch(Store, "remove", hooked_remove)
    patch(Store, "zarr_store", hooked_zarr_store)


def install_from_env() -> MutationCounter | None:
    """Install the counter that ``IM2SP_FAULT_KILL_AT`` / ``IM2SP_FAULT_COUNT_FILE`` ask for, if any."""
    kill_at, count_file = os.environ.get(KILL_AT_ENV), os.environ.get(COUNT_FILE_ENV)
    if kill_at is None and count_file is None:
        return None
    counter = MutationCounter(int(kill_at) if kill_at else None)
    install(counter)
    if count_file:
        atexit.register(lambda: Path(count_file).write_text(str(counter.total)))
    return counter


if __name__ == "__main__":
    from flows.cli import main

    install_from_env()
    main()
