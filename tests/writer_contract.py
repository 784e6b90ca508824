"""The contract every shard writer keeps; subclass ``WriterContract`` once per writer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storage.errors import CorruptShardError, NotCommittedError, UnsupportedFormatError
from storage.reader import verify_shard
from storage.store import Store
from storage.versions import StoreVersion
from storage.writer import ShardWriter


class WriterContract:
    """Round trip, commit-last, crash-before-commit, rejections, reruns and verification."""

    kind = "contract"

    def make_writer(self, version: StoreVersion, shard_id: str, fingerprint: str = "in-1") -> ShardWriter:
        raise NotImplementedError

    def sample(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def bad_sample(self) -> dict[str, Any]:
        raise NotImplementedError

    def read_back(self, version: StoreVersion, shard_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def assert_same(self, written: dict[str, Any], read: Any) -> None:
        raise NotImplementedError

    @pytest.fixture
    def version(self, store: Store) -> StoreVersion:
        version = StoreVersion(store, "ds", self.kind, "v1")
        version.ensure_created({"test": True})
        return version

    def test_round_trip(self, version: StoreVersion) -> None:
        written = {f"k{i}": self.sample(i) for i in range(5)}
        with self.make_writer(version, "train-00000") as writer:
            for key, sample in written.items():
                assert writer.write(key, sample)
        read = self.read_back(version, "train-00000")
        assert list(read) == list(written)
        for key, sample in written.items():
            self.assert_same(sample, read[key])

    def test_marker_counts_add_up(self, version: StoreVersion) -> None:
        with self.make_writer(version, "s") as writer:
            writer.write("a", self.sample(0))
            writer.reject("b", "missing file: b.jpg")
            assert not writer.write("c", self.bad_sample())
            assert not writer.write("a", self.sample(1))  # duplicate key
        marker = version.require_marker("s")
        assert marker.keys == ("a",)
        assert [r.key for r in marker.rejected] == ["b", "c", "a"]
        assert marker.input_count == marker.stored + len(marker.rejected) == 4
        assert marker.files and all(f.bytes > 0 for f in marker.files.values())
        assert marker.input_fingerprint == "in-1"

    def test_empty_shard_commits(self, version: StoreVersion) -> None:
        with self.make_writer(version, "s") as writer:
            writer.reject("only", "undecodable image: test")
        assert version.require_marker("s").stored == 0
        assert self.read_back(version, "s") == {}

    def test_crash_before_commit_leaves_nothing(self, version: StoreVersion) -> None:
        with pytest.raises(RuntimeError, match="boom"), self.make_writer(version, "s") as writer:
            writer.write("a", self.sample(0))
            raise RuntimeError("boom")
        assert version.marker("s") is None
        assert not version.store.exists(version.shard_key("s"))
        with pytest.raises(NotCommittedError):
            self.read_back(version, "s")
        assert version.needs_build("s", "in-1")

    def test_rerun_skips_committed_and_rebuilds_stale(self, version: StoreVersion) -> None:
        with self.make_writer(version, "s") as writer:
            writer.write("a", self.sample(0))
        assert not version.needs_build("s", "in-1")
        assert version.needs_build("s", "in-2")
        with self.make_writer(version, "s", "in-2") as writer:
            writer.write("b", self.sample(1))
        assert list(self.read_back(version, "s")) == ["b"]
        assert version.require_marker("s").input_fingerprint == "in-2"

    def test_reopening_removes_a_partial_attempt(self, version: StoreVersion) -> None:
        version.store.write_bytes(f"{version.shard_key('s')}/leftover.bin", b"partial")
        with self.make_writer(version, "s") as writer:
            writer.write("a", self.sample(0))
        assert "leftover.bin" not in version.require_marker("s").files
        verify_shard(version, "s")

    def test_corruption_is_detected(self, version: StoreVersion) -> None:
        with self.make_writer(version, "s") as writer:
            writer.write("a", self.sample(0))
        marker = version.require_marker("s")
        relpath = sorted(marker.files)[-1]
        key = f"{version.shard_key('s')}/{relpath}"
        data = bytearray(version.store.read_bytes(key))
        data[-1] ^= 0xFF
        version.store.write_bytes(key, bytes(data))
        with pytest.raises(CorruptShardError, match="sha256"):
            verify_shard(version, "s")

    def test_unknown_format_version_is_refused(self, version: StoreVersion) -> None:
        with self.make_writer(version, "s") as writer:
            writer.write("a", self.sample(0))
        key = version.marker_key("s")
        document = json.loads(version.store.read_bytes(key))
        document["format_version"] = 99
        version.store.write_json(key, document)
        with pytest.raises(UnsupportedFormatError, match="format_version 99"):
            self.read_back(version, "s")

    def _commit_keys(self, version: StoreVersion, keys: list[str]) -> dict[str, Any]:
        """Commit one sample per key in shard ``s``; return the marker document as stored."""
        with self.make_writer(version, "s") as writer:
            for index, key in enumerate(keys):
                writer.write(key, self.sample(index))
        return dict(json.loads(version.store.read_bytes(version.marker_key("s"))))

    def test_long_key_lists_are_packed_and_read_back(self, version: StoreVersion) -> None:
        keys = [f"m071506418gb9vo0w5xq3_3luy3gc63z0r9pyeetjgn5ho4uep7b_325114_{i:06d}" for i in range(40)]
        document = self._commit_keys(version, keys)
        assert document["keys"]["packing"] == "zstd+base64" and document["keys"]["count"] == 40
        assert document["format_version"] == 3
        assert list(self.read_back(version, "s")) == keys

    def test_damaged_packed_keys_are_refused(self, version: StoreVersion) -> None:
        document = self._commit_keys(version, [f"item_{index:04d}" for index in range(40)])
        document["keys"]["data"] = document["keys"]["data"][:-8] + "AAAAAAA="
        version.store.write_json(version.marker_key("s"), document)
        with pytest.raises(CorruptShardError, match="packed keys"):
            self.read_back(version, "s")

    def test_format_1_markers_are_still_read(self, version: StoreVersion) -> None:
        keys = [f"item_{index:04d}" for index in range(40)]
        document = self._commit_keys(version, keys)
        document["keys"], document["format_version"] = keys, 1
        version.store.write_json(version.marker_key("s"), document)
        assert list(self.read_back(version, "s")) == keys

    def test_closed_writer_refuses_more(self, version: StoreVersion) -> None:
        writer = self.make_writer(version, "s")
        writer.close()
        with pytest.raises(RuntimeError, match="closed"):
            writer.write("a", self.sample(0))
