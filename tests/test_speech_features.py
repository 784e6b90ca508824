from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import soundfile
import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

from im2sp_models.audio import SAMPLE_RATE, chunks, load_audio
from im2sp_models.errors import CheckpointError, ItemRejected, UnknownModelError
from im2sp_models.speech_features import load_extractor
from im2sp_models.speech_features.hubert import HubertExtractor
from im2sp_models.speech_features.mfcc import MfccExtractor
from storage.errors import ConfigError
from tasks.speech_features import features_of


def _wav(samples: np.ndarray, rate: int = SAMPLE_RATE, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


def _tone(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_any_rate_is_resampled_to_16k(rate: int) -> None:
    audio = load_audio(_wav(_tone(0.5, rate), rate), min_samples=400)
    assert len(audio) == pytest.approx(8_000, abs=2) and audio.dtype == np.float32


@pytest.mark.parametrize(
    ("subtype", "fmt"), [("PCM_24", "WAV"), ("FLOAT", "WAV"), ("PCM_16", "FLAC"), ("PCM_U8", "WAV")]
)
def test_formats(subtype: str, fmt: str) -> None:
    audio = load_audio(_wav(_tone(0.25), subtype=subtype, fmt=fmt), min_samples=400)
    np.testing.assert_allclose(audio, _tone(0.25), atol=1e-2)


def test_stereo_is_averaged_and_silence_is_kept() -> None:
    stereo = np.stack([_tone(0.1), -_tone(0.1)], axis=1)
    assert np.abs(load_audio(_wav(stereo, subtype="FLOAT"), min_samples=400)).max() < 1e-6


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "unreadable audio"),
        (_wav(_tone(0.5))[:30], "unreadable audio"),
        (_wav(np.array([0.1, np.nan] * 400, dtype=np.float32), subtype="FLOAT"), "non-finite audio"),
        (_wav(_tone(100 / SAMPLE_RATE)), "audio too short"),
        (_wav(np.zeros(0, dtype=np.float32)), "empty audio"),
    ],
)
def test_bad_audio_is_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(ItemRejected, match=reason):
        load_audio(data, min_samples=400)


def test_long_audio_in_100_second_chunks() -> None:
    ten_minutes = np.zeros(600 * SAMPLE_RATE + 50, dtype=np.float32)
    parts = list(chunks(ten_minutes, min_samples=400))
    assert [len(p) for p in parts] == [100 * SAMPLE_RATE] * 5 + [100 * SAMPLE_RATE + 50]  # short tail joined


def test_mfcc_is_39_dims_at_50_frames_per_second() -> None:
    extractor = load_extractor("mfcc", None)
    (features,) = extractor.extract([_tone(2.0)])
    assert features.shape == (1 + (2 * SAMPLE_RATE - 400) // 320, 39) and extractor.dim == 39
    assert extractor.fingerprint == load_extractor("mfcc", None).fingerprint
    assert extractor.fingerprint != load_extractor("mfcc", None, n_mfcc=20).fingerprint


def _tiny_hubert(folder: Path, *, stable: bool = False, normalize: bool = False, layers: int = 8) -> Any:
    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=stable,
        feat_extract_norm="layer" if stable else "group",
    )
    model: Any = HubertModel(config)
    model.eval()
    model.save_pretrained(folder)
    features: Any = Wav2Vec2FeatureExtractor
    features(do_normalize=normalize, return_attention_mask=stable).save_pretrained(folder)
    return model


@pytest.mark.parametrize("stable", [False, True])
def test_hubert_layer_6_equals_hidden_states_6(tmp_path: Path, stable: bool) -> None:
    full = _tiny_hubert(tmp_path, stable=stable)
    extractor = load_extractor("hubert", tmp_path, device="cpu", layer=6)
    waveform = _tone(1.0) + np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE).astype(np.float32)
    (features,) = extractor.extract([waveform])
    with torch.no_grad():
        expected = full(torch.from_numpy(waveform)[None], output_hidden_states=True).hidden_states[6][0].numpy()
    np.testing.assert_allclose(features, expected, atol=1e-5)
    assert features.shape == (49, 32)


@pytest.mark.parametrize(("stable", "pad_conv_stack"), [(False, False), (False, True), (True, False), (True, True)])
def test_hubert_batched_equals_one_by_one(tmp_path: Path, stable: bool, pad_conv_stack: bool) -> None:
    """Utterances of different lengths share padded, masked batches (conv stack too, as on GPUs): same features."""
    full = _tiny_hubert(tmp_path, stable=stable)
    extractor = load_extractor("hubert", tmp_path, device="cpu", layer=3, batch_size=4)
    extractor.pad_conv_stack = pad_conv_stack  # type: ignore[attr-defined]
    rng = np.random.default_rng(1)
    waves = [rng.normal(0, 0.1, n).astype(np.float32) for n in (8000, 12000, 8000, 4000, 8400, 400, 30000)]
    assert [len(g) for g in extractor._groups([extractor._frame_count(len(w)) for w in waves])] == [4, 3]  # type: ignore[attr-defined]
    batched = extractor.extract(waves)
    for wave, together in zip(waves, batched, strict=True):
        with torch.no_grad():
            alone = full(torch.from_numpy(wave)[None], output_hidden_states=True).hidden_states[3][0].numpy()
        np.testing.assert_allclose(together, alone, atol=1e-5)
        np.testing.assert_allclose(extractor.extract([wave])[0], together, atol=1e-5)


def test_hubert_normalises_only_when_the_checkpoint_asks(tmp_path: Path) -> None:
    _tiny_hubert(tmp_path / "plain")
    _tiny_hubert(tmp_path / "norm", normalize=True)
    plain = load_extractor("hubert", tmp_path / "plain", device="cpu")
    norm = load_extractor("hubert", tmp_path / "norm", device="cpu")
    assert plain.normalizer is None and norm.normalizer is not None  # type: ignore[attr-defined]
    wave = (_tone(0.5) * 3 + 0.5).astype(np.float32)
    scaled = ((wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)).astype(np.float32)
    np.testing.assert_allclose(norm.extract([wave])[0], plain.extract([scaled])[0], atol=1e-4)


def test_hubert_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="local checkpoint folder"):
        load_extractor("hubert", None)
    _tiny_hubert(tmp_path)
    with pytest.raises(CheckpointError, match="layer 9 requested"):
        load_extractor("hubert", tmp_path, layer=9)
    with pytest.raises(UnknownModelError, match="mfcc"):
        load_extractor("wavlm", tmp_path)


def test_hubert_precision_comes_from_the_option_not_the_device(tmp_path: Path) -> None:
    _tiny_hubert(tmp_path)
    fp32 = load_extractor("hubert", tmp_path, device="cpu")
    bf16 = load_extractor("hubert", tmp_path, device="cpu", precision="bf16")
    assert fp32.fingerprint == load_extractor("hubert", tmp_path, device="cpu", precision="fp32").fingerprint
    assert fp32.fingerprint != bf16.fingerprint
    named = fp32.fingerprint
    fp32.device = "cuda"  # type: ignore[attr-defined]  # where it runs does not name what it computes
    assert fp32.fingerprint == named
    fp32.device = "cpu"  # type: ignore[attr-defined]
    wave = _tone(0.5) + np.random.default_rng(3).normal(0, 0.01, SAMPLE_RATE // 2).astype(np.float32)
    (exact,), (rounded,) = fp32.extract([wave]), bf16.extract([wave])
    assert 1e-4 < np.abs(exact - rounded).max() < 0.5  # bf16 autocast ran: close to, but not, the fp32 features
    with pytest.raises(ConfigError, match="precision"):
        load_extractor("hubert", tmp_path, device="cpu", precision="fp16")


def _reference(model: Any, waveform: np.ndarray, seconds: float, layer: int) -> np.ndarray:
    """Fairseq's HubertFeatureReader: normalise the whole utterance, then one forward per chunk."""
    scaled = ((waveform - waveform.mean()) / np.sqrt(waveform.var() + 1e-7)).astype(np.float32)
    outputs = []
    for piece in chunks(scaled, seconds=seconds, min_samples=400):
        with torch.no_grad():
            hidden = model(torch.from_numpy(piece)[None], output_hidden_states=True).hidden_states[layer][0]
        outputs.append(hidden.numpy())
    return np.concatenate(outputs)


@pytest.mark.parametrize(("seconds", "chunk", "together"), [(250.0, 100.0, False), (25.0, 10.0, True)])
def test_normalising_checkpoints_normalise_the_whole_utterance(
    tmp_path: Path, seconds: float, chunk: float, together: bool
) -> None:
    """HuBERT-Large-like (layer norm, do_normalize): statistics of the utterance, not of each chunk.

    ``together``: the chunks share one padded batch (conv stack padded too, as on GPUs).
    """
    full = _tiny_hubert(tmp_path, stable=True, normalize=True, layers=2)  # 2 blocks: 5,000-frame chunks stay quick
    extractor = load_extractor("hubert", tmp_path, device="cpu", layer=2, max_batch_frames=100_000)
    extractor.pad_conv_stack = together  # type: ignore[attr-defined]
    samples = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(4)
    # Louder and offset further as it goes on, so each chunk's own statistics differ from the utterance's.
    wave = (rng.normal(0, 1, samples) * np.linspace(0.05, 1.0, samples) + np.linspace(0.0, 0.5, samples)).astype(
        np.float32
    )
    assert isinstance(extractor, HubertExtractor)
    (features,) = extractor.extract([wave], chunk_seconds=chunk)
    expected = _reference(full, wave, chunk, 2)
    assert features.shape == expected.shape == (extractor._frame_count(samples) - 2, 32)  # one frame per cut
    np.testing.assert_allclose(features, expected, atol=1e-4)
    first = wave[: int(chunk * SAMPLE_RATE)]  # normalised on its own statistics, as each chunk was before
    alone = _reference(full, first, chunk, 2)
    assert np.abs(alone - expected[: len(alone)]).max() > 1e-2  # the test tells the two apart


def test_mfcc_chunks_as_before(tmp_path: Path) -> None:
    """Chunking moved into the extractors: MFCC features (and so their stores) stay as they were."""
    extractor = load_extractor("mfcc", None)
    assert isinstance(extractor, MfccExtractor)
    wave = np.random.default_rng(5).normal(0, 0.1, 25 * SAMPLE_RATE + 100).astype(np.float32)
    (features,) = extractor.extract([wave], chunk_seconds=10.0)
    pieces = [extractor.extract([piece])[0] for piece in chunks(wave, seconds=10.0, min_samples=400)]
    np.testing.assert_array_equal(features, np.concatenate(pieces))
    with pytest.raises(ConfigError, match="precision"):
        load_extractor("mfcc", None, precision="bf16")


def test_pipeline_path_normalises_the_whole_utterance(tmp_path: Path) -> None:
    """The extract task's path (``features_of``) hands whole utterances to the extractor, which cuts the chunks."""
    full = _tiny_hubert(tmp_path, stable=True, normalize=True, layers=2)
    extractor = load_extractor("hubert", tmp_path, device="cpu", layer=2)
    rng = np.random.default_rng(6)
    samples = 25 * SAMPLE_RATE
    wave = (rng.normal(0, 1, samples) * np.linspace(0.05, 1.0, samples) + np.linspace(0.0, 0.5, samples)).astype(
        np.float32
    )
    (features,) = features_of(extractor, [wave], 10.0)
    np.testing.assert_allclose(features, _reference(full, wave, 10.0, 2), atol=1e-4)


def test_hubert_attention_is_fused_and_gives_eager_features(tmp_path: Path) -> None:
    """Fused attention (sdpa) with padding masks gives the features of transformers' eager attention."""
    _tiny_hubert(tmp_path)
    extractor = load_extractor("hubert", tmp_path, device="cpu", layer=4, batch_size=4)
    assert isinstance(extractor, HubertExtractor) and extractor.model.config._attn_implementation == "sdpa"
    eager: Any = HubertModel.from_pretrained(str(tmp_path), attn_implementation="eager")
    eager.eval()
    rng = np.random.default_rng(7)
    waves = [rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 9000, 12345, 16000)]
    for wave, features in zip(waves, extractor.extract(waves), strict=True):
        with torch.no_grad():
            expected = eager(torch.from_numpy(wave)[None], output_hidden_states=True).hidden_states[4][0].numpy()
        np.testing.assert_allclose(features, expected, atol=1e-5)


def test_hubert_counts_its_padding(tmp_path: Path) -> None:
    _tiny_hubert(tmp_path)
    extractor = load_extractor("hubert", tmp_path, device="cpu", layer=2, batch_size=2)
    assert isinstance(extractor, HubertExtractor) and extractor.padding == 0.0
    extractor.extract([np.zeros(16000, np.float32)] * 2)
    assert extractor.padding == 0.0  # equal lengths: nothing padded (and no mask given)
    extractor.extract([np.zeros(16000, np.float32), np.zeros(8000, np.float32)])  # 49 and 24 frames, padded to 49
    assert extractor.padding == pytest.approx(25 / (2 * 49 + 2 * 49))


@pytest.mark.parametrize("affine", [True, False])
def test_masked_group_norm_is_group_norm_of_each_item_alone(affine: bool) -> None:
    from im2sp_models.speech_features.hubert import _masked_group_norm

    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(4, 8, affine=affine)
    if affine:
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    valid = torch.tensor([300, 17, 1000])
    hidden = torch.randn(3, 8, 1000) * 3 + 2
    with torch.no_grad():
        out = _masked_group_norm(hidden, valid, norm)
        for item, steps in enumerate(valid.tolist()):
            alone = norm(hidden[item : item + 1, :, :steps])[0]
            torch.testing.assert_close(out[item, :, :steps], alone, atol=1e-5, rtol=1e-5)


def _wav_files(root: Path, seconds: dict[str, float | None]) -> tuple[tuple[str, str, str], ...]:
    items = []
    rng = np.random.default_rng(8)
    for key, length in seconds.items():
        data = b"not audio" if length is None else _wav(rng.normal(0, 0.1, int(length * SAMPLE_RATE)))
        (root / f"{key}.wav").write_bytes(data)
        items.append((key, f"{key}.wav", hashlib.sha256(data).hexdigest()))
    return tuple(items)


def test_a_shard_is_computed_longest_first_and_results_come_by_plan_position(tmp_path: Path) -> None:
    """Length buckets across the whole shard: the extractor sees windows sorted longest first; nothing is lost."""
    from concurrent.futures import ThreadPoolExecutor

    from tasks.speech_features import computed_longest_first, longest_first

    seconds: dict[str, float | None] = {"a": 0.5, "b": 2.0, "bad": None, "c": 1.0, "d": 2.0, "e": 0.25, "f": 1.5}
    items = _wav_files(tmp_path, seconds)
    seen: list[int] = []

    class Recording:
        min_samples = 400

        def extract(self, waveforms: list[np.ndarray], chunk_seconds: float = 100.0) -> list[np.ndarray]:
            seen.extend(len(w) for w in waveforms)
            return [np.full((1, 1), len(w), np.float32) for w in waveforms]

    with ThreadPoolExecutor(2) as pool:
        assert [key for _, (key, _, _) in longest_first(pool, tmp_path, items)] == ["b", "d", "f", "c", "a", "e", "bad"]
        results = dict(computed_longest_first(pool, tmp_path, cast(Any, Recording()), items, 2, 100.0, 2))
    assert seen == sorted(seen, reverse=True) and len(seen) == 6
    assert sorted(results) == list(range(len(items)))
    for position, (key, _, _) in enumerate(items):
        result = results[position]
        if key == "bad":
            assert isinstance(result, str) and result.startswith("unreadable audio")
        else:
            assert not isinstance(result, str) and result[0, 0] == int((seconds[key] or 0) * SAMPLE_RATE)


def test_hubert_shard_rows_stay_in_plan_order(tmp_path: Path) -> None:
    """Computed longest first, stored in the plan's order, each utterance's features as if computed alone."""
    from storage.reader import iter_ragged, verify_shard
    from storage.store import Store
    from storage.versions import StoreVersion
    from tasks.jobs import ShardJob
    from tasks.models import ExtractorRef
    from tasks.speech_features import ExtractSettings, extract_shard

    checkpoint, audio = tmp_path / "hubert", tmp_path / "audio"
    audio.mkdir()
    _tiny_hubert(checkpoint)
    seconds: dict[str, float | None] = {"a": 0.5, "b": 1.25, "bad": None, "c": 0.75, "d": 1.0}
    job = ShardJob("ds", "train-00000", "fp", _wav_files(audio, seconds))
    ref = ExtractorRef("hubert", str(checkpoint), "cpu", {"layer": 3, "batch_size": 2})
    store = Store(str(tmp_path / "store"))
    extract_shard(store, audio, job, "v", ref, ExtractSettings(keep="all", batch_size=2))
    version = StoreVersion(store, "ds", "speech-features", "v")
    marker = verify_shard(version, job.shard_id)
    assert marker.keys == ("a", "b", "c", "d") and [r.key for r in marker.rejected] == ["bad"]
    extractor = load_extractor("hubert", checkpoint, device="cpu", layer=3)
    for key, stored in iter_ragged(version, job.shard_id):
        (alone,) = extractor.extract([load_audio((audio / f"{key}.wav").read_bytes(), min_samples=400)])
        assert marker.extra["frames"][key] == len(alone)
        np.testing.assert_allclose(stored.astype(np.float32), alone, atol=2e-3, rtol=1e-3)
