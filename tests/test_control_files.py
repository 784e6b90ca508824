"""Damaged control files (``current.json``, ``version.json``): listed by verify, refused clearly, then repaired."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from storage.blob_writer import BlobWriter
from storage.errors import DamagedPointerError, UnsupportedFormatError
from storage.store import Store
from storage.verify import verify_store
from storage.versions import StoreVersion, apply_retention, current_version, stale_versions


def _published(store: Store) -> StoreVersion:
    version = StoreVersion(store, "coco", "image-units", "v1")
    version.ensure_created({"test": True})
    with BlobWriter(version, "all", input_fingerprint="in") as writer:
        writer.write("a.bin", {"bytes": b"data"})
    version.publish(["all"])
    return version


@pytest.mark.parametrize(
    ("pointer", "reason"),
    [
        ('{"format_versiom": 2, "version": "v1", "shards": ["all"]}', "no format_version"),
        ('{"format_version": 99, "version": "v1", "shards": ["all"]}', "format_version 99"),
        ('{"format_version": 2, "version": "v1", "shards": null}', "not a list of shard ids"),
        ('{"format_version": 2, "version": "../x", "shards": ["all"]}', "no valid version name"),
        ('{"format_version": 2, "version": "v1", "shards": ["all", "gone"]}', "gone without a commit marker"),
        ('{"format_version": 2, "version": "v9", "shards": ["all"]}', "v9, which does not exist"),
        ('{"format_version": 2, "vers', "not JSON"),
    ],
)
def test_damaged_pointers_are_listed_not_crashed_on(tmp_path: Path, pointer: str, reason: str) -> None:
    store = Store(str(tmp_path))
    _published(store)
    Path(store.path("coco/image-units/current.json")).write_text(pointer)
    (damage,) = verify_store(store, ["coco"], flag=False).damaged
    assert (damage.kind, damage.shard_id, damage.rebuilt_by) == ("image-units", "current.json", "tokenize-images")
    assert reason in damage.reason and damage.is_control


def test_an_unreadable_pointer_names_its_flow_and_a_publish_repairs_it(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    version = _published(store)
    Path(store.path("coco/image-units/current.json")).write_text("{")
    with pytest.raises(DamagedPointerError, match=r"current\.json is damaged .*rerun tokenize-images"):
        current_version(store, "coco", "image-units")
    assert current_version(store, "coco", "image-units", damaged_as_missing=True) is None
    with pytest.raises(DamagedPointerError):  # never "everything is stale, reclaimable" on a damaged pointer
        stale_versions(store, "coco", "image-units")
    assert apply_retention(store, "coco", "image-units", keep=1) == []  # nothing deleted past a damaged pointer
    version.publish(["all"])
    assert verify_store(store, ["coco"], flag=False).damaged == ()


def test_a_damaged_version_json_is_rewritten_when_the_version_is_opened(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    version = _published(store)
    Path(store.path(f"{version.prefix}/version.json")).write_text('{"format_version": 2, "da')
    (damage,) = verify_store(store, ["coco"], flag=False).damaged
    assert damage.shard_id == "version.json" and "not JSON" in damage.reason
    version.ensure_created({"test": True})
    assert version.info()["produced_by"] == {"test": True}
    Path(store.path(f"{version.prefix}/version.json")).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(UnsupportedFormatError, match="format_version 99"):
        version.ensure_created({"test": True})  # a newer format is never overwritten
    assert json.loads(Path(store.path(f"{version.prefix}/version.json")).read_text()) == {"format_version": 99}


def test_a_codebook_flagged_by_verify_is_rebuilt_by_the_next_save(tmp_path: Path) -> None:
    from tasks.speech_codebook import save_speech_codebook

    store = Store(str(tmp_path))
    centroids = np.arange(12, dtype=np.float32).reshape(4, 3)
    ref = save_speech_codebook(store, centroids, {"extractor_fingerprint": "e"})
    version = StoreVersion(store, "_shared", "speech-codebook", ref.codebook_id)
    path = Path(store.path(f"{version.shard_key('all')}/centroids.npy"))
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    (damage,) = verify_store(store, [], flag=True).damaged
    assert damage.rebuilt_by == "learn-speech-codebook"
    save_speech_codebook(store, centroids, {"extractor_fingerprint": "e"})
    assert verify_store(store, [], flag=False).damaged == ()


_WRITER = """
import os, signal, sys, time
from storage.store import Store
store = Store(sys.argv[1])
if sys.argv[2] == "die":
    store.fs.mv = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
else:
    store.fs.mv = lambda *args, **kwargs: time.sleep(120)
store.write_json("coco/image-units/v1/commits/" + sys.argv[3], {"shard": sys.argv[3]})
"""


def _temporaries(folder: Path) -> list[str]:
    names = [p.name for p in folder.iterdir()] if folder.exists() else []
    return sorted(name.split(".tmp-")[0] for name in names if ".tmp-" in name)


def test_a_write_removes_temporaries_of_killed_writers_and_keeps_those_of_live_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys
    import time

    import storage.store

    store = Store(str(tmp_path))
    commits = tmp_path / "coco/image-units/v1/commits"
    live = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), "live", "b.json"])
    try:
        deadline = time.monotonic() + 60
        while _temporaries(commits) != ["b.json"]:
            assert time.monotonic() < deadline, "the live writer wrote no temporary"
            time.sleep(0.1)
        # Killed between writing the temporary and renaming it, as a SIGKILL or a lost machine would.
        killed = subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path), "die", "a.json"], check=False)
        assert killed.returncode == -9
        assert _temporaries(commits) == ["a.json", "b.json"]
        elsewhere = commits / f"c.json.tmp-{'0' * 32}-token-1@another-host"
        elsewhere.write_text("{}")
        legacy = commits / f"d.json.tmp-{'0' * 32}"
        legacy.write_text("{}")

        store.write_json("coco/image-units/v1/commits/a.json", {"shard": "a"})
        # The dead writer's temporary is gone; the live writer's, another host's and an unknown form stay.
        assert _temporaries(commits) == ["b.json", "c.json", "d.json"]
        assert json.loads((commits / "a.json").read_text()) == {"shard": "a"}
    finally:
        live.kill()
        live.wait()
    monkeypatch.setattr(storage.store, "_swept", {})  # as a later sweep would see the folder
    store.write_json("coco/image-units/v1/commits/b.json", {"shard": "b"})
    assert _temporaries(commits) == ["c.json", "d.json"]
    # This process's own temporaries (another thread's write in flight) are kept; an earlier process that had
    # this pid is told apart by its token.
    assert not storage.store.is_abandoned_temporary(Path(storage.store._temporary_path("e.json")).name)
    assert storage.store.is_abandoned_temporary(f"e.json.tmp-{'0' * 32}-other-{os.getpid()}@{storage.store._ORIGIN}")


def test_manifests_repair_without_probing_media_again_and_rebuild_when_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.manifests
    from storage.kinds import MANIFESTS
    from storage.manifests import build_manifests
    from tests.tiny_datasets import coco_entry, tiny_config, write_coco

    write_coco(tmp_path / "coco", [coco_entry(i, "train", [f"Caption {i}."]) for i in range(1, 4)])
    spec = tiny_config(tmp_path).datasets["coco"]
    store = Store(str(tmp_path / "store"))
    built = build_manifests(store, "coco", spec, shard_size=2, workers=1)
    version = current_version(store, "coco", MANIFESTS)
    assert version is not None and not built.skipped
    table = Path(store.path(version.shard_key("all"))) / "images.parquet"
    clean = table.read_bytes()

    def no_probe(*args: object, **kwargs: object) -> None:
        raise AssertionError("media probed again")

    # A damaged pointer is rewritten from the committed manifests: the media files are not read again.
    pointer = Path(store.path("coco/manifests/current.json"))
    pointer.write_text("{")
    with monkeypatch.context() as patched:
        patched.setattr(storage.manifests, "probe_all", no_probe)
        again = build_manifests(store, "coco", spec, shard_size=2, workers=1)
    assert again.skipped and again.counts == built.counts
    repaired = current_version(store, "coco", MANIFESTS)
    assert repaired is not None and repaired.version == version.version

    # A table flagged damaged by verify is rebuilt (it used to be skipped: its marker exists).
    table.write_bytes(clean[:-8] + b"garbage!")
    assert [d.shard_id for d in verify_store(store, ["coco"]).damaged] == ["all"]
    rebuilt = build_manifests(store, "coco", spec, shard_size=2, workers=1)
    assert not rebuilt.skipped and rebuilt.counts == built.counts
    assert not verify_store(store, ["coco"]).damaged and table.read_bytes() == clean


def test_the_storage_report_lists_manifests_it_cannot_read(tmp_path: Path) -> None:
    from storage.kinds import MANIFESTS
    from storage.manifests import build_manifests
    from storage.report import dataset_entries, stale_entries
    from tests.tiny_datasets import coco_entry, tiny_config, write_coco

    write_coco(tmp_path / "coco", [coco_entry(i, "train", [f"Caption {i}."]) for i in range(1, 4)])
    store = Store(str(tmp_path / "store"))
    build_manifests(store, "coco", tiny_config(tmp_path).datasets["coco"], shard_size=2, workers=1)
    version = current_version(store, "coco", MANIFESTS)
    assert version is not None
    entries, problems = dataset_entries(store, "coco", {})
    assert [e.representation for e in entries] == ["source", "source"] and problems == []

    table = Path(store.path(version.shard_key("all"))) / "images.parquet"
    table.write_bytes(b"not parquet")  # unreadable, and not yet flagged by verify
    entries, problems = dataset_entries(store, "coco", {})
    assert entries == [] and [(p.kind, p.rerun) for p in problems] == [(MANIFESTS, "build-manifests")]
    assert "images.parquet: missing or does not match its commit marker" in problems[0].problem, problems

    Path(store.path(version.marker_key("all"))).unlink()  # the pointer names a version with no marker
    entries, problems = dataset_entries(store, "coco", {})
    assert entries == [] and "not committed" in problems[0].problem, problems
    assert stale_entries(store, ["coco"]) == ([], [])  # the current version is not called reclaimable
    StoreVersion(store, "coco", MANIFESTS, "older").ensure_created({"test": True})
    stale, problems = stale_entries(store, ["coco"])
    assert [v.version for v in stale] == ["older"] and problems == []
    Path(store.path("coco/manifests/current.json")).write_text("{")  # which version is current: unknown
    stale, problems = stale_entries(store, ["coco"])
    assert stale == [] and [(p.kind, p.rerun) for p in problems] == [(MANIFESTS, "build-manifests")]


def test_a_remote_model_shard_is_hashed_where_it_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import uuid

    from storage.errors import CorruptShardError
    from storage.reader import verified_local_copy

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    store = Store(f"memory://models-{uuid.uuid4().hex}")  # a remote store: files are downloaded to load them
    assert not store.is_local
    version = StoreVersion(store, "_shared", "image-codebook", "v1")
    version.ensure_created({"test": True})
    with BlobWriter(version, "all", input_fingerprint="in") as writer:
        writer.write("codebook.npy", {"bytes": b"0123456789" * 100})
    folder = verified_local_copy(version, "all")
    cached = folder / "codebook.npy"
    assert cached.read_bytes() == b"0123456789" * 100
    cached.write_bytes(b"9" * 1000)  # the cached copy is damaged: downloaded again, not loaded
    assert verified_local_copy(version, "all") == folder and cached.read_bytes() == b"0123456789" * 100
    # Damaged in the store (same size, other bytes): the good cached copy is still what the marker vouches for;
    # once it is gone, the download is hashed, fetched once more, then refused.
    store.fs.pipe_file(store.path(f"{version.shard_key('all')}/codebook.npy"), b"x" * 1000)
    assert verified_local_copy(version, "all") == folder
    shutil.rmtree(folder)
    with pytest.raises(CorruptShardError, match=r"codebook\.npy: sha256 does not match"):
        verified_local_copy(version, "all")


def test_training_shards_a_run_was_trained_on_are_not_called_reclaimable(tmp_path: Path) -> None:
    from storage.kinds import SHARED, TRAIN_RUNS, TRAINING_SHARDS
    from storage.report import shared_entries, stale_entries

    store = Store(str(tmp_path))
    for name in ("v0", "v1", "v2"):
        version = StoreVersion(store, "coco", TRAINING_SHARDS, name)
        version.ensure_created({"test": True})
        with BlobWriter(version, "train-00000", input_fingerprint="in") as writer:
            writer.write("a.bin", {"bytes": b"data"})
    StoreVersion(store, "coco", TRAINING_SHARDS, "v2").publish(["train-00000"])
    run = StoreVersion(store, SHARED, TRAIN_RUNS, "run1")
    run.ensure_created({"settings": {}, "data": {"versions": {"coco": "v1"}, "splits": ["train"]}})
    with BlobWriter(run, "step-00000010", input_fingerprint="in") as writer:
        writer.write("model.safetensors", {"bytes": b"weights"})

    stale, problems = stale_entries(store, ["coco"])
    assert {v.version: v.kept_because for v in stale} == {"v0": "", "v1": "a training run was trained on it"}
    assert problems == []
    entries, problems = shared_entries(store)
    assert [(e.representation, e.version, e.items) for e in entries] == [("checkpoints", "run1", 1)] and not problems
