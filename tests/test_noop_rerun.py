"""A rerun on an unchanged store writes nothing: every file keeps its bytes and its modification time.

The store is built once by the real pipeline flow on a tiny dataset; then each flow runs again, alone, and the
store's files (bytes and ``mtime_ns``) must be exactly as before. Pointers, ``version.json``, commit markers,
lock files, previews and storage reports included: a file created and removed again leaves nothing to see.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from flows.config import PipelineConfig
from flows.registry import FLOWS
from storage.blob_writer import BlobWriter
from storage.kept_reports import repeats_newest
from storage.store import Store
from storage.versions import StoreVersion
from tests.tiny_datasets import coco_entry, tiny_config, write_coco

#: Every flow a user can rerun on its own, in pipeline order (im2sp-pipeline is the first run itself).
RERUN = (
    "build-manifests",
    "learn-image-codebook",
    "tokenize-images",
    "retokenize-images",
    "extract-speech-features",
    "learn-speech-codebook",
    "unitize-speech",
    "build-training-shards",
    "train-im2sp",
    "evaluate-im2sp",
    "storage-report",
)

Snapshot = dict[str, tuple[str, int]]


def snapshot(root: Path) -> Snapshot:
    """Every file below ``root``: its sha256 and its modification time in nanoseconds, by relative path."""
    files: Snapshot = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            files[str(path.relative_to(root))] = (digest, path.stat().st_mtime_ns)
    return files


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """What differs between two snapshots, one line per file."""
    lines = [f"new: {p}" for p in sorted(after.keys() - before.keys())]
    lines += [f"removed: {p}" for p in sorted(before.keys() - after.keys())]
    for path in sorted(before.keys() & after.keys()):
        (old_hash, old_time), (new_hash, new_time) = before[path], after[path]
        if old_hash != new_hash:
            lines.append(f"rewritten with other bytes: {path}")
        elif old_time != new_time:
            lines.append(f"rewritten with the same bytes (mtime moved): {path}")
    return lines


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> PipelineConfig:
    """A tiny COCO dataset and a store that the whole pipeline has built from it."""
    from flows.pipeline import pipeline_flow

    root = tmp_path_factory.mktemp("noop")
    write_coco(root / "coco", [coco_entry(1, "train", ["A dog runs."]), coco_entry(2, "test", ["A cat sits."])])
    config = tiny_config(root)
    pipeline_flow(config)
    return config


def test_every_flow_reruns_without_writing(built: PipelineConfig) -> None:
    root = Path(built.store.url)
    assert (root / "coco/image-units/current.json").exists()  # the pipeline really built the stores
    before = snapshot(root)
    assert any(p.startswith("reports/storage/") for p in before)  # storage-report keeps its report in the store
    wrote: dict[str, list[str]] = {}
    for name in RERUN:
        FLOWS[name](built)
        after = snapshot(root)
        if changed := changes(before, after):
            wrote[name] = changed
        before = after  # each flow is judged on its own writes
    listing = "\n".join(f"{name}: {line}" for name, lines in wrote.items() for line in lines)
    assert not wrote, f"rerunning flows on an unchanged store wrote to it:\n{listing}"


def _age(path: Path) -> int:
    """Set a file's modification time an hour back (so any rewrite shows) and return it."""
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 3_600_000_000_000))
    return path.stat().st_mtime_ns


def test_a_write_of_the_same_bytes_leaves_the_file(store: Store) -> None:
    store.write_bytes("a/b.bin", b"same")
    path = Path(store.path("a/b.bin"))
    old = _age(path)
    store.write_bytes("a/b.bin", b"same")
    assert path.stat().st_mtime_ns == old
    store.write_bytes("a/b.bin", b"diff")  # same size, other bytes
    assert path.read_bytes() == b"diff" and path.stat().st_mtime_ns != old


def test_the_pointer_is_rewritten_only_when_it_names_another_version_or_shards(store: Store) -> None:
    version = StoreVersion(store, "coco", "image-units", "v1")
    version.ensure_created({"test": True})
    for shard_id in ("a", "b"):
        with BlobWriter(version, shard_id, input_fingerprint="in") as writer:
            writer.write("x.bin", {"bytes": shard_id.encode()})
    info = Path(store.path(f"{version.prefix}/version.json"))
    info_time = _age(info)
    version.ensure_created({"test": True})
    assert info.stat().st_mtime_ns == info_time
    version.publish(["a"])
    pointer = Path(store.path("coco/image-units/current.json"))
    first, old = pointer.read_bytes(), _age(pointer)
    version.publish(["a", "a"])  # the same shard list, however given
    assert (pointer.read_bytes(), pointer.stat().st_mtime_ns) == (first, old)
    version.publish(["b", "a"])
    assert json.loads(pointer.read_text())["shards"] == ["a", "b"] and pointer.stat().st_mtime_ns != old
    pointer.write_text('{"format_version": 2, "version": "v1", "shards": ["a", "b"]')  # damaged: repaired
    version.publish(["a", "b"])
    assert json.loads(pointer.read_text())["version"] == "v1"


def test_a_storage_report_that_repeats_the_newest_kept_one_is_not_kept(store: Store) -> None:
    document = {"format_version": 2, "entries": [{"items": 3}], "reclaimable_bytes": 0, "created_at": "t1"}
    assert repeats_newest(store, "reports/storage", document) is None  # nothing kept yet
    store.write_bytes("reports/storage/20261101T000000Z.json", json.dumps(document).encode())
    assert repeats_newest(store, "reports/storage", document) is None  # its chart is missing: keep a whole one
    store.write_bytes("reports/storage/20261101T000000Z.png", b"png")
    store.write_bytes("reports/storage/20000101T000000Z.json", b"{")  # an older, damaged one does not matter
    again = {**document, "created_at": "t2"}
    assert repeats_newest(store, "reports/storage", again) == "20261101T000000Z"
    assert repeats_newest(store, "reports/storage", {**again, "entries": [{"items": 4}]}) is None
    store.write_bytes("reports/storage/20261102T000000Z.json", b"{")  # the newest is damaged: a new one replaces it
    store.write_bytes("reports/storage/20261102T000000Z.png", b"png")
    assert repeats_newest(store, "reports/storage", again) is None
