"""Probe rejections: paths that cannot be opened, empty files, folders, decoder messages, absurdly loud audio."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from im2sp_models.audio import load_audio
from im2sp_models.errors import ItemRejected
from storage.manifests import build_manifests, read_table
from storage.probe import probe_image, probe_utterance
from storage.sources.records import OK, ImageRecord, UtteranceRecord
from storage.sources.spec import CocoSpec
from storage.store import Store
from storage.versions import StoreVersion
from tasks.jobs import ShardJob
from tasks.models import ExtractorRef
from tasks.speech_codebook import SpeechCodebookSettings, learn_speech_codebook
from tasks.speech_features import ExtractSettings, extract_shard
from tasks.speech_units import UnitCodebook, UnitSource, non_finite_reason, unitize_shard
from tests.tiny_datasets import coco_entry, write_coco


def _image(root: Path, relpath: str, data: bytes | None = None) -> ImageRecord:
    if data is not None:
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    record = ImageRecord("1", "train", relpath)
    probe_image(root, record)
    return record


def _utterance(root: Path, relpath: str, data: bytes | None = None) -> UtteranceRecord:
    if data is not None:
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    record = UtteranceRecord("u", "1", "train", relpath, "A DOG.", "spk")
    probe_utterance(root, record)
    return record


def _renamed_image(root: Path, filename: str) -> CocoSpec:
    """A one-image COCO dataset whose Karpathy file lists ``filename`` (no such file exists)."""
    entry = coco_entry(1, "train", ["A dog."])
    write_coco(root, [entry], speech=False)
    entry["filename"] = filename
    (root / "karpathy" / "dataset_coco.json").write_text(json.dumps({"images": [entry], "dataset": "coco"}))
    return CocoSpec(root=root, max_rejected_fraction=1.0)


def test_zero_byte_files_are_rejected_as_empty(tmp_path: Path) -> None:
    image, wav = _image(tmp_path, "a.jpg", b""), _utterance(tmp_path, "a.wav", b"")
    assert image.reason == "empty file: a.jpg has 0 bytes" and image.bytes == 0
    assert wav.reason == "empty file: a.wav has 0 bytes" and wav.bytes == 0


def test_a_folder_where_a_file_is_listed_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "folder.wav").mkdir()
    assert _image(tmp_path, "folder.jpg").reason == "not a file: folder.jpg is a directory"
    assert _utterance(tmp_path, "folder.wav").reason == "not a file: folder.wav is a directory"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")  # reading it would block for ever
    assert _image(tmp_path, "pipe.jpg").reason == "not a file: pipe.jpg is not a regular file"


def test_a_name_too_long_is_rejected_not_raised(tmp_path: Path) -> None:
    name = "x" * 300 + ".jpg"
    record = _image(tmp_path, name)
    assert record.status != OK
    assert record.reason == f"unreadable path: {name!r}: file name too long"


def test_missing_files_and_dangling_links_stay_missing(tmp_path: Path) -> None:
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "plain.jpg").write_bytes(b"x")
    assert _image(tmp_path, "dangling.jpg").reason == "missing file: dangling.jpg"
    assert _image(tmp_path, "gone.jpg").reason == "missing file: gone.jpg"
    assert _image(tmp_path, "plain.jpg/below.jpg").reason == "missing file: plain.jpg/below.jpg"


def test_decoder_messages_name_the_file_and_are_the_same_every_run(tmp_path: Path) -> None:
    images = [_image(tmp_path, "text.jpg", b"not a JPEG\n") for _ in range(2)]
    wavs = [_utterance(tmp_path, "text.wav", b"RIFF? no, text\n") for _ in range(2)]
    for records in (images, wavs):
        assert records[0].reason == records[1].reason
        assert "0x" not in records[0].reason and "object at" not in records[0].reason
    assert images[0].reason == "undecodable image: cannot identify image file 'text.jpg'"
    assert wavs[0].reason == "unreadable audio: Error opening 'text.wav': Format not recognised."


def test_load_audio_hides_the_buffer_repr() -> None:
    with pytest.raises(ItemRejected) as raised:
        load_audio(b"RIFF? no, text\n", min_samples=1)
    assert str(raised.value) == "unreadable audio: Error opening the file: Format not recognised."


@pytest.mark.parametrize("filename", ["bad\0name.jpg", "x" * 300 + ".jpg"])
def test_build_manifests_survives_unusable_names(tmp_path: Path, store: Store, filename: str) -> None:
    result = build_manifests(store, "coco", _renamed_image(tmp_path / "data", filename), shard_size=4, workers=1)
    assert result.counts["images"] == {"listed": 1, "ok": 0, "rejected": 1}
    (row,) = read_table(StoreVersion(store, "coco", "manifests", result.version), "images").to_pylist()
    assert row["reason"].startswith(("unsafe path:", "unreadable path:"))
    again = build_manifests(store, "coco", _renamed_image(tmp_path / "data", filename), shard_size=4, workers=1)
    assert again.skipped and again.version == result.version  # the fingerprint is stable


def test_non_finite_reason_checks_as_float16() -> None:
    assert non_finite_reason(np.ones((3, 2), np.float32)) is None
    assert non_finite_reason(np.zeros((0, 2), np.float32)) is None
    for bad in (np.nan, np.inf, 1e6):  # 1e6 is finite in float32, not in float16
        features = np.ones((3, 2), np.float32)
        features[1, 0] = bad
        assert non_finite_reason(features) == "values contain NaN or Inf (as float16)"


def _wav_item(root: Path, key: str, samples: np.ndarray) -> tuple[str, str, str]:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples.astype(np.float32), 16_000, subtype="FLOAT", format="WAV")
    (root / f"{key}.wav").write_bytes(buffer.getvalue())
    return key, f"{key}.wav", hashlib.sha256(buffer.getvalue()).hexdigest()


def test_unitize_rejects_absurdly_loud_audio_as_extraction_does(tmp_path: Path, store: Store) -> None:
    tone = 0.3 * np.sin(2 * np.pi * 300 * np.arange(16_000) / 16_000)
    items = [_wav_item(tmp_path, f"u{i}", tone * (1 + i) / 4) for i in range(3)]
    items.append(_wav_item(tmp_path, "loud", tone * 1e20))  # finite samples, features overflow float16
    job = ShardJob("ds", "train-00000", "fp", tuple(items))
    ref = ExtractorRef("mfcc", "")
    extracted = extract_shard(store, tmp_path, job, "feats", ref, ExtractSettings(keep="sample", fraction=0.5, seed=1))
    StoreVersion(store, "ds", "speech-features", "feats").ensure_created({"fingerprint": "mfcc-x"})
    StoreVersion(store, "ds", "speech-features", "feats").publish([job.shard_id])
    codebook = learn_speech_codebook(store, ["ds"], SpeechCodebookSettings(clusters=4, max_frames=60, seed=0, niter=3))
    source = UnitSource("feats", "sample", ref)
    outcome = unitize_shard(store, tmp_path, job, "units", source, UnitCodebook(codebook.codebook_id, 4))
    assert (extracted.stored, extracted.rejected) == (outcome.stored, outcome.rejected) == (3, 1)
    features = StoreVersion(store, "ds", "speech-features", "feats").require_marker(job.shard_id)
    units = StoreVersion(store, "ds", "speech-units", "units").require_marker(job.shard_id)
    assert [(r.key, r.reason) for r in units.rejected] == [(r.key, r.reason) for r in features.rejected]
    assert [(r.key, r.reason) for r in units.rejected] == [("loud", "values contain NaN or Inf (as float16)")]
