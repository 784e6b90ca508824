"""Shard locks: two runs of a flow on one store never build the same shard at the same time.

A run holds a shard's lock from the "is it committed?" check to its commit marker, so a second run that
reaches the same shard waits for the first, then finds it committed and skips it: both runs exit cleanly
and the shard is built once. On a local (or NFSv4) store the lock is ``fcntl.flock`` on
``<version>/locks/<shard>.lock``: the kernel releases it when its holder dies, even by SIGKILL, so a crash
never leaves a stale lock. Object stores have no such primitive: there, runs are not locked against each
other and must not overlap. Every Prefect deployment runs one flow run at a time (``flows/registry.py``), so a
flow never overlaps itself through its deployment; different flows that write the same store are not limited.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from storage.store import Store


@contextlib.contextmanager
def shard_lock(store: Store, lock_key: str) -> Iterator[None]:
    """Hold the exclusive lock at ``lock_key`` (blocking until it is free); a no-op on object stores."""
    if not store.is_local:
        yield
        return
    path = Path(store.path(lock_key))
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock
