from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import soundfile

from storage.reader import iter_ragged, verify_shard
from storage.store import Store
from storage.versions import StoreVersion
from tasks.jobs import ShardJob
from tasks.models import ExtractorRef
from tasks.speech_features import ExtractSettings, extract_shard, sampled_frames

RATE = 16_000


def _wav(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


def _noise(seconds: float, rate: int = RATE) -> np.ndarray:
    return (np.random.default_rng(int(seconds * 100)).normal(0, 0.1, int(seconds * rate))).astype(np.float32)


def _job(root: Path, files: dict[str, bytes | None]) -> ShardJob:
    items = []
    for key, data in files.items():
        if data is not None:
            (root / f"{key}.wav").write_bytes(data)
        items.append((key, f"{key}.wav", hashlib.sha256(data or b"").hexdigest()))
    return ShardJob("ds", "train-00000", "fp", tuple(items))


def test_shard_with_bad_audio_commits_and_counts_add_up(tmp_path: Path, store: Store) -> None:
    files: dict[str, bytes | None] = {
        "ok": _wav(_noise(1.0)),
        "silence": _wav(np.zeros(RATE, dtype=np.float32)),
        "stereo-44k": _wav(np.stack([_noise(0.5, 44_100)] * 2, axis=1), 44_100),
        "float-flac": _wav(_noise(0.5), subtype="PCM_24", fmt="FLAC"),
        "ten-minutes": _wav(np.zeros(600 * RATE, dtype=np.float32) + 0.01),
        "truncated": _wav(_noise(0.5))[:40],
        "zero-length": b"",
        "nan": _wav(np.full(800, np.nan, dtype=np.float32), subtype="FLOAT"),
        "hundred-samples": _wav(_noise(100 / RATE)),
        "missing": None,
    }
    job = _job(tmp_path, files)
    outcome = extract_shard(
        store, tmp_path, job, "v", ExtractorRef("mfcc", ""), ExtractSettings(keep="all", batch_size=3)
    )
    version = StoreVersion(store, "ds", "speech-features", "v")
    marker = verify_shard(version, job.shard_id)
    assert set(marker.keys) == {"ok", "silence", "stereo-44k", "float-flac", "ten-minutes"}
    reasons = {r.key: r.reason.split(":")[0] for r in marker.rejected}
    assert reasons == {
        "truncated": "unreadable audio",
        "zero-length": "unreadable audio",
        "nan": "non-finite audio",
        "hundred-samples": "audio too short",
        "missing": "missing file",
    }
    assert outcome.stored + outcome.rejected == len(files)
    features = dict(iter_ragged(version, job.shard_id))
    assert features["ok"].shape == (49, 39) and features["ok"].dtype == np.float16
    assert len(features["ten-minutes"]) == marker.extra["frames"]["ten-minutes"] >= 6 * 4999  # six 100 s chunks
    assert not extract_shard(store, tmp_path, job, "v", ExtractorRef("mfcc", ""), ExtractSettings(keep="all")).built


def test_keep_sample_stores_the_seeded_fraction(tmp_path: Path, store: Store) -> None:
    job = _job(tmp_path, {"a": _wav(_noise(4.0)), "b": _wav(_noise(2.0))})
    extract_shard(store, tmp_path, job, "all", ExtractorRef("mfcc", ""), ExtractSettings(keep="all"))
    extract_shard(
        store, tmp_path, job, "sample", ExtractorRef("mfcc", ""), ExtractSettings(keep="sample", fraction=0.25, seed=3)
    )
    full = dict(iter_ragged(StoreVersion(store, "ds", "speech-features", "all"), job.shard_id))
    sample = dict(iter_ragged(StoreVersion(store, "ds", "speech-features", "sample"), job.shard_id))
    for key in ("a", "b"):
        np.testing.assert_array_equal(sample[key], full[key][sampled_frames(key, len(full[key]), 0.25, 3)])
    assert 0.1 < sum(len(v) for v in sample.values()) / sum(len(v) for v in full.values()) < 0.4
