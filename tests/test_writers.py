from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.dedup import dedup
from storage.parquet_writer import ParquetTablesWriter
from storage.reader import iter_ragged, iter_webdataset, read_units, verify_shard
from storage.speech_units_writer import SpeechUnitsWriter, read_speech_units, stored_frames, utterance_stats
from storage.store import Store
from storage.versions import StoreVersion
from storage.webdataset_writer import WebDatasetWriter
from storage.writer import ShardWriter
from storage.zarr_writers import ZarrRaggedWriter, ZarrUnitsWriter
from tests.writer_contract import WriterContract


class TestZarrUnits(WriterContract):
    kind = "image-units"

    def make_writer(self, version: StoreVersion, shard_id: str, fingerprint: str = "in-1") -> ShardWriter:
        return ZarrUnitsWriter(version, shard_id, input_fingerprint=fingerprint, chunk_rows=2)

    def sample(self, index: int) -> dict[str, Any]:
        return {"units": np.random.default_rng(index).integers(0, 8192, (32, 32))}

    def bad_sample(self) -> dict[str, Any]:
        return {"units": np.zeros((16, 16), dtype=np.int64)}

    def read_back(self, version: StoreVersion, shard_id: str) -> dict[str, Any]:
        keys, units = read_units(version, shard_id)
        return dict(zip(keys, units, strict=True))

    def assert_same(self, written: dict[str, Any], read: Any) -> None:
        np.testing.assert_array_equal(written["units"], read)
        assert read.dtype == np.uint16

    def test_out_of_range_units_are_rejected(self, version: StoreVersion) -> None:
        with self.make_writer(version, "s") as writer:
            assert not writer.write("big", {"units": np.full((32, 32), 70000)})
        assert "range" in version.require_marker("s").rejected[0].reason


class TestZarrRagged(WriterContract):
    kind = "speech-features"

    def make_writer(self, version: StoreVersion, shard_id: str, fingerprint: str = "in-1") -> ShardWriter:
        return ZarrRaggedWriter(version, shard_id, input_fingerprint=fingerprint, row_shape=(3,), chunk_rows=4)

    def sample(self, index: int) -> dict[str, Any]:
        return {"values": np.random.default_rng(index).normal(size=(index + 2, 3)).astype(np.float16)}

    def bad_sample(self) -> dict[str, Any]:
        return {"values": np.array([[np.nan, 0, 0]], dtype=np.float32)}

    def read_back(self, version: StoreVersion, shard_id: str) -> dict[str, Any]:
        return dict(iter_ragged(version, shard_id))

    def assert_same(self, written: dict[str, Any], read: Any) -> None:
        np.testing.assert_array_equal(written["values"], read)


class TestWebDataset(WriterContract):
    kind = "webdataset"

    def make_writer(self, version: StoreVersion, shard_id: str, fingerprint: str = "in-1") -> ShardWriter:
        return WebDatasetWriter(version, shard_id, input_fingerprint=fingerprint)

    def sample(self, index: int) -> dict[str, Any]:
        return {"units.npy": np.arange(index + 3, dtype=np.uint16), "txt": f"caption {index}", "json": {"i": index}}

    def bad_sample(self) -> dict[str, Any]:
        return {"Bad Field": b"x"}

    def read_back(self, version: StoreVersion, shard_id: str) -> dict[str, Any]:
        return dict(iter_webdataset(version, shard_id))

    def assert_same(self, written: dict[str, Any], read: Any) -> None:
        np.testing.assert_array_equal(np.load(io.BytesIO(read["units.npy"])), written["units.npy"])
        assert read["txt"].decode() == written["txt"]

    def test_readable_by_webdataset(self, version: StoreVersion) -> None:
        with self.make_writer(version, "s") as writer:
            for i in range(3):
                writer.write(f"utt-{i}", self.sample(i))
        url = version.store.path(f"{version.shard_key('s')}/{version.require_marker('s').extra['tar']}")
        samples = list(webdataset.WebDataset(url, shardshuffle=False).decode())
        assert [s["__key__"] for s in samples] == ["utt-0", "utt-1", "utt-2"]
        np.testing.assert_array_equal(samples[2]["units.npy"], np.arange(5))

    def test_readable_by_hugging_face_datasets(self, version: StoreVersion) -> None:
        from datasets import load_dataset

        with self.make_writer(version, "s") as writer:
            for i in range(3):
                writer.write(f"utt-{i}", self.sample(i))
        url = version.store.path(f"{version.shard_key('s')}/{version.require_marker('s').extra['tar']}")
        rows = load_dataset("webdataset", data_files={"train": [url]}, split="train")
        assert rows["__key__"] == ["utt-0", "utt-1", "utt-2"] and rows[1]["txt"] == "caption 1"
        np.testing.assert_array_equal(np.asarray(rows[2]["units.npy"]), np.arange(5))

    def test_keys_with_dots_are_rejected(self, version: StoreVersion) -> None:
        with self.make_writer(version, "s") as writer:
            assert not writer.write("a.b", self.sample(0))
        assert "no dots" in version.require_marker("s").rejected[0].reason


class TestParquetTables(WriterContract):
    kind = "manifests"

    def make_writer(self, version: StoreVersion, shard_id: str, fingerprint: str = "in-1") -> ShardWriter:
        return ParquetTablesWriter(version, shard_id, input_fingerprint=fingerprint)

    def sample(self, index: int) -> dict[str, Any]:
        return {"table": pa.table({"id": [str(i) for i in range(index + 1)]})}

    def bad_sample(self) -> dict[str, Any]:
        return {"table": [1, 2, 3]}

    def read_back(self, version: StoreVersion, shard_id: str) -> dict[str, Any]:
        marker = verify_shard(version, shard_id)
        prefix = version.shard_key(shard_id)
        return {k: pq.read_table(io.BytesIO(version.store.read_bytes(f"{prefix}/{k}.parquet"))) for k in marker.keys}

    def assert_same(self, written: dict[str, Any], read: Any) -> None:
        assert read.equals(written["table"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_ragged_round_trip_any_lengths(lengths: list[int]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        version = StoreVersion(Store(tmp), "ds", "speech-units", "v")
        items = {f"u{i}": np.arange(n, dtype=np.int64) % 200 for i, n in enumerate(lengths)}
        with ZarrRaggedWriter(version, "s", input_fingerprint="f", dtype="uint16", chunk_rows=7) as writer:
            for key, values in items.items():
                writer.write(key, {"values": values})
        read = dict(iter_ragged(version, "s"))
        assert list(read) == list(items)
        for key, values in items.items():
            np.testing.assert_array_equal(read[key], values)


def test_prune_drops_unplanned_shards_marker_first(tmp_path: Any) -> None:
    version = StoreVersion(Store(str(tmp_path)), "ds", "image-units", "v")
    for shard in ("train-00000", "train-00001", "old-00000"):
        with ZarrUnitsWriter(version, shard, input_fingerprint="f") as writer:
            writer.write("k", {"units": np.zeros((32, 32), dtype=np.uint16)})
    assert version.prune(["train-00000", "train-00001"]) == ["old-00000"]
    assert sorted(version.committed()) == ["train-00000", "train-00001"]
    assert not version.store.exists(version.shard_key("old-00000"))


class TestZarrUnitsAns(TestZarrUnits):
    """The same contract with entropy-coded units."""

    def make_writer(self, version: StoreVersion, shard_id: str, fingerprint: str = "in-1") -> ShardWriter:
        return ZarrUnitsWriter(version, shard_id, input_fingerprint=fingerprint, codec="ans")


class TestZarrUnitsAuto(TestZarrUnits):
    """The same contract when each shard picks its smallest codec."""

    def make_writer(self, version: StoreVersion, shard_id: str, fingerprint: str = "in-1") -> ShardWriter:
        return ZarrUnitsWriter(version, shard_id, input_fingerprint=fingerprint, codec="auto")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=8191), max_size=3000), st.integers(min_value=0, max_value=3))
def test_ans_round_trip(tokens: list[int], repeat: int) -> None:
    from storage.ans_codec import decode_tokens, encode_tokens

    array = np.array(tokens * (repeat + 1), dtype=np.int64)
    np.testing.assert_array_equal(decode_tokens(encode_tokens(array)), array)


def test_ans_arrays_open_with_plain_zarr(tmp_path: Any) -> None:
    import zarr

    version = StoreVersion(Store(str(tmp_path)), "ds", "image-units", "v")
    grid = np.random.default_rng(0).zipf(1.5, (32, 32)) % 8192
    with ZarrUnitsWriter(version, "s", input_fingerprint="f", codec="ans") as writer:
        writer.write("a", {"units": grid})
    path = f"{tmp_path}/ds/image-units/v/shards/s/units"
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[0], grid)
    # A fresh interpreter that never imports im2sp finds the codec through the zarr.codecs entry point.
    script = f"import zarr; print(int(zarr.open_array({path!r}, mode='r')[0].sum()))"
    output = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert int(output) == int(grid.sum())


class TestWebDatasetGzip(TestWebDataset):
    compression = "gz"

    def make_writer(self, version: StoreVersion, shard_id: str, fingerprint: str = "in-1") -> ShardWriter:
        return WebDatasetWriter(
            version, shard_id, input_fingerprint=fingerprint, compression=self.compression, sidecar={"a": 1}
        )

    def test_compressed_and_sidecar(self, version: StoreVersion) -> None:
        with self.make_writer(version, "s") as writer:
            writer.write("k", self.sample(0))
        marker = version.require_marker("s")
        name = f"data.tar.{self.compression}"
        assert marker.extra["tar"] == name and set(marker.files) == {name, "meta.json"}
        assert version.store.read_json(f"{version.shard_key('s')}/meta.json") == {"a": 1}


class TestWebDatasetXz(TestWebDatasetGzip):
    compression = "xz"


class TestSpeechUnits(WriterContract):
    kind = "speech-units"

    def make_writer(self, version: StoreVersion, shard_id: str, fingerprint: str = "in-1") -> ShardWriter:
        return SpeechUnitsWriter(version, shard_id, input_fingerprint=fingerprint, codebook_size=200)

    def sample(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng(index)
        return {"units": np.repeat(rng.integers(0, 200, 10 + index), rng.integers(1, 6, 10 + index))}

    def bad_sample(self) -> dict[str, Any]:
        return {"units": np.array([3, 200])}

    def read_back(self, version: StoreVersion, shard_id: str) -> dict[str, Any]:
        return read_speech_units(version, shard_id)

    def assert_same(self, written: dict[str, Any], read: Any) -> None:
        units, values, runs = read
        np.testing.assert_array_equal(units, written["units"])
        np.testing.assert_array_equal(np.repeat(values, runs), written["units"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 70_000)), max_size=6))
def test_speech_units_runs_of_any_length_round_trip(runs: list[tuple[int, int]]) -> None:
    import tempfile

    units = np.repeat([u for u, _ in runs], [n for _, n in runs]).astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        version = StoreVersion(Store(tmp), "ds", "speech-units", "v")
        version.ensure_created({})
        with SpeechUnitsWriter(version, "s", input_fingerprint="f", codebook_size=4) as writer:
            writer.write("a", {"units": units})
            writer.write("b", {"units": units[::-1].copy()})
        read = read_speech_units(version, "s")
    np.testing.assert_array_equal(read["a"][0], units)
    np.testing.assert_array_equal(read["b"][0], units[::-1])
    frames, distinct, _ = utterance_stats(read["a"][1], read["a"][2])
    assert frames == len(units) and distinct == len(dedup(units)[0])


def test_speech_units_layout_1_is_still_read(store: Store) -> None:
    """Shards written before layout 2 (full-rate units stored beside the runs) read the same."""
    import zarr

    from storage.zarr_arrays import write_whole_array

    version = StoreVersion(store, "ds", "speech-units", "old")
    version.ensure_created({})
    units = np.array([5, 5, 7, 1, 1, 1], dtype=np.uint8)
    values, runs = dedup(units)

    class LayoutOne(SpeechUnitsWriter):
        def _flush(self) -> dict[str, Any]:
            group = zarr.open_group(self.version.store.zarr_store(self.shard_key), mode="w", zarr_format=3)
            for name, data in {
                "units": units,
                "units_offsets": np.array([0, 6]),
                "dedup": values,
                "runs": runs.astype(np.uint32),
                "dedup_offsets": np.array([0, 3]),
            }.items():
                write_whole_array(group, name, data, chunk_rows=8, codec="blosc-zstd-shuffle")
            return {"codebook_size": 8, "stats": {"u": [6, 3, 1.459]}}

    with LayoutOne(version, "s", input_fingerprint="f", codebook_size=8) as writer:
        writer.write("u", {"units": units})
    full, read_values, read_runs = read_speech_units(version, "s")["u"]
    np.testing.assert_array_equal(full, units)
    np.testing.assert_array_equal(read_values, values)
    np.testing.assert_array_equal(read_runs, runs)
    assert stored_frames(version.require_marker("s").extra) == 6
