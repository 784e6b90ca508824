from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import given
from hypothesis import strategies as st

from storage.dedup import dedup, expand, unit_entropy
from storage.errors import Im2SpError, NotEnoughDataError
from storage.speech_units_writer import read_speech_units, utterance_stats
from storage.store import Store
from storage.versions import StoreVersion
from tasks.jobs import ShardJob
from tasks.models import ExtractorRef
from tasks.speech_codebook import (
    SpeechCodebookSettings,
    current_speech_codebook,
    learn_speech_codebook,
    save_speech_codebook,
)
from tasks.speech_features import ExtractSettings, extract_shard
from tasks.speech_units import UnitCodebook, UnitSource, unitize_shard, units_version_id


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=200))
def test_dedup_is_lossless(units: list[int]) -> None:
    array = np.array(units, dtype=np.int64)
    values, runs = dedup(array)
    np.testing.assert_array_equal(expand(values, runs), array)
    assert (runs > 0).all() and not (values[1:] == values[:-1]).any()


def test_entropy() -> None:
    assert unit_entropy(np.array([1, 1, 2, 2])) == 1.0 and unit_entropy(np.array([], dtype=np.int64)) == 0.0


def _dataset(root: Path, count: int) -> ShardJob:
    rng = np.random.default_rng(0)
    items = []
    for i in range(count):
        buffer = io.BytesIO()
        t = np.arange(16_000) / 16_000
        tone = 0.2 * np.sin(2 * np.pi * (150 + 40 * i) * t) + rng.normal(0, 0.02, t.size)
        soundfile.write(buffer, tone.astype(np.float32), 16_000, subtype="PCM_16", format="WAV")
        (root / f"u{i}.wav").write_bytes(buffer.getvalue())
        items.append((f"u{i}", f"u{i}.wav", hashlib.sha256(buffer.getvalue()).hexdigest()))
    items.append(("gone", "gone.wav", "0" * 64))
    return ShardJob("ds", "train-00000", "fp", tuple(items))


@pytest.mark.parametrize("keep", ["all", "sample"])
def test_codebook_and_units_from_stored_or_recomputed_features(tmp_path: Path, store: Store, keep: str) -> None:
    job = _dataset(tmp_path, 6)
    ref = ExtractorRef("mfcc", "")
    extract_shard(store, tmp_path, job, "feats", ref, ExtractSettings(keep=keep, fraction=0.5, seed=1))
    StoreVersion(store, "ds", "speech-features", "feats").ensure_created({"fingerprint": "mfcc-x"})
    StoreVersion(store, "ds", "speech-features", "feats").publish([job.shard_id])
    codebook = learn_speech_codebook(store, ["ds"], SpeechCodebookSettings(clusters=8, max_frames=120, seed=0, niter=5))
    assert codebook.sample_frames == 120 and codebook.dim == 39
    found = current_speech_codebook(store)
    assert found is not None and found[0] == codebook.codebook_id and found[1].shape == (8, 39)
    source = UnitSource("feats", keep, ref)
    outcome = unitize_shard(store, tmp_path, job, "units", source, UnitCodebook(codebook.codebook_id, 8))
    assert (outcome.stored, outcome.rejected) == (6, 1)
    units = read_speech_units(StoreVersion(store, "ds", "speech-units", "units"), job.shard_id)
    full, values, runs = units["u0"]
    assert full.dtype == np.uint8 and len(full) == 49 and full.max() < 8
    np.testing.assert_array_equal(expand(values, runs), full)
    marker = StoreVersion(store, "ds", "speech-units", "units").require_marker(job.shard_id)
    assert marker.extra["layout"] == 2 and marker.extra["frames"] == 6 * 49
    assert utterance_stats(values, runs)[:2] == (49, len(values))
    assert not unitize_shard(store, tmp_path, job, "units", source, UnitCodebook(codebook.codebook_id, 8)).built


def _published_features(root: Path, store: Store, count: int) -> None:
    """Every frame of ``count`` utterances, published as dataset ``ds``'s features."""
    job = _dataset(root, count)
    extract_shard(store, root, job, "feats", ExtractorRef("mfcc", ""), ExtractSettings(keep="all"))
    version = StoreVersion(store, "ds", "speech-features", "feats")
    version.ensure_created({"fingerprint": "mfcc-x"})
    version.publish([job.shard_id])


def test_codebook_sample_is_capped(tmp_path: Path, store: Store) -> None:
    _published_features(tmp_path, store, 4)
    assert (
        learn_speech_codebook(
            store, ["ds"], SpeechCodebookSettings(clusters=4, max_frames=50, seed=0, niter=3)
        ).sample_frames
        == 50
    )
    with pytest.raises(NotEnoughDataError, match="cannot train"):
        learn_speech_codebook(store, ["ds"], SpeechCodebookSettings(clusters=100, max_frames=50, seed=0))


def test_a_codebook_learned_from_the_same_features_and_settings_is_reused(tmp_path: Path, store: Store) -> None:
    _published_features(tmp_path, store, 4)
    settings = SpeechCodebookSettings(clusters=4, max_frames=100, seed=0, niter=3)
    first = learn_speech_codebook(store, ["ds"], settings)
    again = learn_speech_codebook(store, ["ds"], settings)
    assert not first.reused and again.reused
    assert (again.codebook_id, again.sample_frames, again.inertia) == (first.codebook_id, 100, first.inertia)
    other = learn_speech_codebook(store, ["ds"], SpeechCodebookSettings(clusters=4, max_frames=100, seed=1, niter=3))
    assert not other.reused  # another seed is another codebook, learned


def test_import_kmeans_refuses_pickles_unless_trusted(tmp_path: Path) -> None:
    import joblib
    from sklearn.cluster import MiniBatchKMeans
    from typer.testing import CliRunner

    from flows.cli import app

    km = MiniBatchKMeans(n_clusters=5, n_init=1, random_state=0).fit(np.random.default_rng(0).normal(size=(200, 39)))
    joblib.dump(km, tmp_path / "km.bin")
    config = tmp_path / "pipeline.yaml"
    config.write_text("datasets: {coco: {kind: coco, root: coco}}\n")
    refused = CliRunner().invoke(app, ["codebook", "import-kmeans", str(tmp_path / "km.bin"), "--config", str(config)])
    assert refused.exit_code == 1 and "--trust-pickle" in refused.output
    assert not (tmp_path / "store/_shared").exists()
    done = CliRunner().invoke(
        app, ["codebook", "import-kmeans", str(tmp_path / "km.bin"), "--config", str(config), "--trust-pickle"]
    )
    assert done.exit_code == 0, done.output
    found = current_speech_codebook(Store(str(tmp_path / "store")))
    assert found is not None and found[1].shape == (5, 39) and found[2]["imported_from"] == "km.bin"
    np.testing.assert_allclose(found[1], km.cluster_centers_, rtol=1e-6)


def test_feature_dtype_names_codebooks_and_units(tmp_path: Path, store: Store) -> None:
    """float16 and float32 frames can take different nearest centroids: the dtype is part of the version ids."""
    assert units_version_id("f", "c", "float16") != units_version_id("f", "c", "float32")
    ref = ExtractorRef("mfcc", "")
    assert (UnitSource("f", "all", ref).feature_dtype, UnitSource("f", "sample", ref).feature_dtype) == (
        "float16",  # read back as stored
        "float32",  # recomputed, assigned as computed
    )
    centroids = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    half = save_speech_codebook(store, centroids, {"extractor_fingerprint": "e", "feature_dtype": "float16"})
    single = save_speech_codebook(store, centroids, {"extractor_fingerprint": "e", "feature_dtype": "float32"})
    assert half.codebook_id != single.codebook_id
    job = _dataset(tmp_path, 3)
    extract_shard(store, tmp_path, job, "feats", ref, ExtractSettings(keep="all"))
    version = StoreVersion(store, "ds", "speech-features", "feats")
    version.ensure_created({"fingerprint": "mfcc-x"})
    version.publish([job.shard_id])
    learned = learn_speech_codebook(store, ["ds"], SpeechCodebookSettings(clusters=4, max_frames=100, seed=0, niter=3))
    found = current_speech_codebook(store)
    assert found is not None and found[0] == learned.codebook_id and found[2]["feature_dtype"] == "float16"
    mislabelled = UnitSource("feats", "all", ref, feature_dtype="float32")
    with pytest.raises(Im2SpError, match="float16"):
        unitize_shard(store, tmp_path, job, "units", mislabelled, UnitCodebook(learned.codebook_id, 4))
