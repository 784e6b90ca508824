"""The store root: one fsspec URL (a local folder by default, ``s3://`` or ``gs://`` in production).

Every path handed around inside the project is a store-relative key (``"coco/manifests/…"``); only this
module turns keys into filesystem paths. Small control files (markers, pointers) are written atomically:
on a local disk through a temporary file and a rename, on object stores by a single PUT.

A process killed between writing a temporary file and renaming it leaves the temporary behind. Its name
records where it was written (host, boot, PID namespace), the process id and a per-process token, so the next
write into that folder (the rerun rewrites the same file) removes the temporaries of processes that are gone,
and never those of a live one.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from storage.hashing import sha256_bytes, sha256_stream

#: Marks a temporary file: ``<target>.tmp-<32 hex>-<process token>-<pid>@<origin>``.
TEMPORARY_MARK = ".tmp-"
#: How long a folder counts as swept of abandoned temporaries before a write into it looks again (seconds).
SWEEP_INTERVAL_S = 600.0


def _origin() -> str:
    """Where a pid in a temporary's name means a process: this host, this boot, this PID namespace (16 hex).

    Two machines (or two boots) never share a boot id, and containers with their own PID namespace differ in
    its inode, so a pid is checked only where it names the process that wrote the temporary.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = str(Path("/proc/self/ns/pid").stat().st_ino)
    except OSError:  # not Linux: the host name alone
        boot = namespace = ""
    return sha256_bytes(f"{socket.gethostname()}\0{boot}\0{namespace}".encode())[:16]


_ORIGIN = _origin()
_process_token = uuid.uuid4().hex[:12]
_swept: dict[str, float] = {}
_swept_lock = threading.Lock()


def _new_process() -> None:
    """After a fork the child is a new process: a new token, a fresh lock, and no folder counts as swept yet."""
    global _process_token, _swept_lock
    _process_token = uuid.uuid4().hex[:12]
    _swept_lock = threading.Lock()  # another thread may have held it at the fork
    _swept.clear()


os.register_at_fork(after_in_child=_new_process)


def _temporary_path(target: str) -> str:
    return f"{target}{TEMPORARY_MARK}{uuid.uuid4().hex}-{_process_token}-{os.getpid()}@{_ORIGIN}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def is_abandoned_temporary(name: str) -> bool:
    """Whether a file name is a temporary left by a process of this host that no longer runs.

    Temporaries of other hosts, boots or PID namespaces (another container sharing the folder), of live
    processes (this one's other threads included), and names in any other form are never taken as abandoned.
    A live process that reuses a dead one's id keeps its temporaries until that process ends too; a process
    id equal to this process's own is told apart by the per-process token.
    """
    _, mark, tail = name.rpartition(TEMPORARY_MARK)
    ids, at, origin = tail.partition("@")
    parts = ids.split("-")
    if not mark or not at or origin != _ORIGIN or len(parts) != 3 or not parts[2].isdigit():
        return False
    token, pid = parts[1], int(parts[2])
    if pid == os.getpid():
        return token != _process_token
    return not _process_alive(pid)


def _sweep_abandoned_temporaries(folder: str) -> None:
    """Remove abandoned temporaries from a local folder, at most once per ``SWEEP_INTERVAL_S`` per process."""
    now = time.monotonic()
    with _swept_lock:
        if now - _swept.get(folder, -SWEEP_INTERVAL_S) < SWEEP_INTERVAL_S:
            return
        _swept[folder] = now
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no such folder yet, or not listable: housekeeping never fails a write
        return
    for entry in entries:
        if TEMPORARY_MARK in entry.name and is_abandoned_temporary(entry.name):
            with contextlib.suppress(OSError):  # swept by another process first, or not ours to remove
                Path(entry.path).unlink()


@dataclass(frozen=True)
class FileInfo:
    """One file below a store key: its key relative to that prefix and its size in bytes."""

    relpath: str
    size: int


@dataclass(frozen=True)
class StoreRef:
    """What a task needs to open a store: the root URL and its fsspec options (small, picklable, JSON-able).

    Flows hand this to tasks instead of an open :class:`Store` (whose filesystem object need not pickle), and
    each task opens it where it runs, on a Dask worker as in the flow's process.

    Args:
        url: Root URL or local path, as :class:`Store` takes it.
        options: Extra keyword arguments for the fsspec filesystem (credentials, endpoint), or None.
    """

    url: str
    options: dict[str, Any] | None = None

    def __hash__(self) -> int:
        # The options are a dict: hash their JSON form, so a reference can key a cache like any frozen value.
        return hash((self.url, json.dumps(self.options, sort_keys=True, default=str)))

    def open(self) -> Store:
        """The store this reference names."""
        return Store(self.url, self.options)


class Store:
    """A store root reached through fsspec.

    Args:
        url: Root URL or local path. Relative local paths are taken as given (the caller resolves them).
        storage_options: Extra keyword arguments for the fsspec filesystem (credentials, endpoint).
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/") or url
        self.fs, root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.root: str = root.rstrip("/")
        self.storage_options = dict(storage_options or {})

    @property
    def is_local(self) -> bool:
        """Whether the store is a folder on this machine's filesystem."""
        protocol = self.fs.protocol
        names = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        return "file" in names or "local" in names

    def path(self, key: str) -> str:
        """Return the filesystem path of a store key."""
        key = key.strip("/")
        return f"{self.root}/{key}" if key else self.root

    def url_of(self, key: str) -> str:
        """Return a URL for a store key that a user (or another process) can open."""
        key = key.strip("/")
        return f"{self.url}/{key}" if key else self.url

    def exists(self, key: str) -> bool:
        """Whether a file or folder exists at the key."""
        return bool(self.fs.exists(self.path(key)))

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write a whole file atomically: readers see the old content or the new one, never a part.

        A file that already holds exactly ``data`` is left as it is (bytes and modification time), so a rerun
        that produces the same file writes nothing.
        """
        target = self.path(key)
        if self.is_local:  # before the comparison: a rerun that writes nothing still clears a crash's leftovers
            _sweep_abandoned_temporaries(posixpath.dirname(target))
        if self._holds(target, data):
            return
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        if not self.is_local:
            self.fs.pipe_file(target, data)  # a single PUT is atomic on object stores
            return
        temporary = _temporary_path(target)
        self.fs.pipe_file(temporary, data)
        self.fs.mv(temporary, target)

    def _holds(self, target: str, data: bytes) -> bool:
        """Whether the file at ``target`` exists with exactly these bytes (its size is compared first)."""
        try:
            info = self.fs.info(target)
            return info["type"] == "file" and int(info["size"]) == len(data) and self.fs.cat_file(target) == data
        except (FileNotFoundError, NotADirectoryError):
            return False

    def write_json(self, key: str, value: Any) -> None:
        """Write a JSON document atomically (UTF-8, indented for people who read it)."""
        self.write_bytes(key, (json.dumps(value, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))

    def read_bytes(self, key: str) -> bytes:
        """Read a whole file."""
        data: bytes = self.fs.cat_file(self.path(key))
        return data

    def read_json(self, key: str) -> Any:
        """Read a JSON document."""
        return json.loads(self.read_bytes(key))

    def open(self, key: str, mode: str = "rb") -> Any:
        """Open a file for streaming; writing creates parent folders first."""
        if "w" in mode:
            self.fs.makedirs(posixpath.dirname(self.path(key)), exist_ok=True)
        return self.fs.open(self.path(key), mode)

    def sha256(self, key: str) -> str:
        """Return the hex sha256 of a file in the store."""
        with self.fs.open(self.path(key), "rb") as stream:
            return sha256_stream(stream)

    def remove(self, key: str) -> None:
        """Delete a file or a whole folder; a missing key is not an error."""
        path = self.path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list_dirs(self, key: str) -> list[str]:
        """Return the names of the folders directly below a key (empty when it does not exist)."""
        path = self.path(key)
        if not self.fs.exists(path):
            return []
        entries = self.fs.ls(path, detail=True)
        return sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "directory")

    def list_files(self, key: str) -> list[str]:
        """Return the names of the files directly below a key (empty when it does not exist)."""
        path = self.path(key)
        if not self.fs.exists(path):
            return []
        entries = self.fs.ls(path, detail=True)
        return sorted(posixpath.basename(e["name"]) for e in entries if e["type"] == "file")

    def walk_files(self, key: str) -> Iterator[FileInfo]:
        """Yield every file below a key, with paths relative to it, in sorted order."""
        base = self.path(key)
        if not self.fs.exists(base):
            return
        found = self.fs.find(base, detail=True)
        for name in sorted(found):
            info = found[name]
            if info["type"] == "file":
                yield FileInfo(relpath=posixpath.relpath(name, base), size=int(info["size"]))

    def disk_usage(self, key: str) -> int:
        """Return the total size in bytes of every file below a key."""
        return sum(f.size for f in self.walk_files(key))

    def local_copy(self, key: str, content: str = "") -> Path:
        """Return a local folder or file holding a key's content, downloading it once from remote stores.

        Args:
            key: The store key.
            content: An id of the content (e.g. its checksums): a key rewritten with other content (a rebuilt
                shard) is downloaded again instead of served from the cache.
        """
        if self.is_local:
            return Path(self.path(key))
        digest = sha256_bytes(f"{self.url_of(key)}\0{content}".encode())[:16]
        target = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "im2sp" / "store" / digest
        if not target.exists():
            partial = target.with_name(f"{digest}.partial-{uuid.uuid4().hex}")
            self.fs.get(self.path(key), str(partial), recursive=True)
            partial.rename(target)
        return target

    def zarr_store(self, key: str, *, read_only: bool = False) -> Any:
        """Return a zarr v3 store object rooted at a key."""
        import zarr.storage

        if self.is_local:
            return zarr.storage.LocalStore(self.path(key), read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            self.url_of(key), storage_options=self.storage_options or None, read_only=read_only
        )
