"""unit-mel: log-mel framing, training that learns, bit-exact resumption, the exported vocoder and its refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from im2sp_models.errors import CheckpointError
from im2sp_models.unit_mel import UnitMelSettings, UnitMelTrainer, UnitMelVocoder, log_mel, run_lengths
from im2sp_models.vocoders import VOCODERS, load_vocoder, vocoder_names

#: Tiny, but with the real analysis (80 bins, n_fft 1024, hop 320) so lengths are the real ones.
TINY = UnitMelSettings(
    hidden=16,
    layers=3,
    kernel=3,
    dilation_cycle=2,
    duration_hidden=8,
    batch_size=4,
    segment_frames=24,
    lr=1e-2,
    warmup_steps=2,
    dropout=0.1,
    unit_noise=0.05,
    griffin_lim_iters=4,
)
CLUSTERS = 6


def _tone_utterance(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Runs of units, each frame a 320-sample tone whose pitch is 300 + 250·unit Hz; its log-mel."""
    units = np.repeat(rng.integers(0, CLUSTERS, 12), rng.integers(1, 5, 12))
    pitch = np.repeat(300.0 + 250.0 * units, 320)
    wave = (0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / 16_000)).astype(np.float32)
    frames = 1 + (len(wave) + 80 - 400) // 320  # mfcc's framing of the wave padded to 80 more samples
    units = np.concatenate([units, units[-1:]])[:frames]
    return units, log_mel(wave, 16_000, len(units), TINY)


@pytest.fixture(scope="module")
def tones() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [_tone_utterance(rng) for _ in range(8)]


def _steps(trainer: UnitMelTrainer, data: list[tuple[np.ndarray, np.ndarray]], count: int) -> list[dict[str, float]]:
    out = []
    for _ in range(count):
        start = (trainer.step * TINY.batch_size) % len(data)
        out.append(trainer.train_step([data[(start + i) % len(data)] for i in range(TINY.batch_size)]))
    return out


def test_log_mel_frames_are_centred_on_the_units_windows() -> None:
    wave = np.zeros(16_000, dtype=np.float32)
    wave[320 * 10 + 200] = 1.0  # the centre of unit 10's 400-sample window
    values = log_mel(wave, 16_000, 49)
    assert values.shape == (49, 80) and values.dtype == np.float32
    assert int(np.argmax(values.sum(axis=1))) == 10
    assert np.all(values[30:] == np.float32(math.log(1e-5)))  # silence is the floor
    longer = log_mel(wave, 16_000, 60)
    assert longer.shape == (60, 80) and np.array_equal(longer[:49], values)
    assert np.all(longer[51:] == np.float32(math.log(1e-5)))  # padded with silence past the audio


def test_log_mel_resamples_and_refuses_stereo() -> None:
    t = np.arange(22_050) / 22_050
    at_22k = log_mel((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 22_050, 49)
    t = np.arange(16_000) / 16_000
    at_16k = log_mel((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 16_000, 49)
    assert at_22k.shape == (49, 80) and np.abs(at_22k[5:-5] - at_16k[5:-5]).mean() < 0.1
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 1000), dtype=np.float32), 16_000, 3)


@given(st.lists(st.integers(0, 3), max_size=30))
def test_run_lengths_round_trip(units: list[int]) -> None:
    values, lengths = run_lengths(np.array(units, dtype=np.int64))
    assert np.array_equal(np.repeat(values, lengths), units)
    assert np.all(values[1:] != values[:-1]) and np.all(lengths >= 1)


def test_losses_fall_on_tones(tones: list[tuple[np.ndarray, np.ndarray]]) -> None:
    losses = _steps(UnitMelTrainer(TINY, CLUSTERS), tones, 40)
    assert set(losses[0]) >= {"loss", "mel_l1", "duration_loss", "lr"}
    first, last = losses[:3], losses[-5:]
    assert np.mean([x["mel_l1"] for x in last]) < 0.75 * np.mean([x["mel_l1"] for x in first])
    assert np.mean([x["duration_loss"] for x in last]) < 0.5 * np.mean([x["duration_loss"] for x in first])


def test_resume_continues_bit_exactly(tones: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path) -> None:
    whole = UnitMelTrainer(TINY, CLUSTERS)
    expected = _steps(whole, tones, 6)
    first = UnitMelTrainer(TINY, CLUSTERS)
    losses = _steps(first, tones, 3)
    first.save_checkpoint(tmp_path / "ckpt")
    torch.manual_seed(123), torch.rand(5)  # the process's random stream moves; the trainer's must not care
    resumed = UnitMelTrainer.resume(tmp_path / "ckpt")
    assert resumed.step == 3
    losses += _steps(resumed, tones, 3)
    assert losses == expected
    for (name, ours), theirs in zip(
        resumed.network.state_dict().items(), whole.network.state_dict().values(), strict=True
    ):
        assert torch.equal(ours, theirs), name


def test_trainer_refusals(tmp_path: Path) -> None:
    trainer = UnitMelTrainer(TINY, CLUSTERS)
    with pytest.raises(ValueError, match=r"need a \(3, 80\) log-mel"):
        trainer.train_step([(np.array([0, 1, 2]), np.zeros((4, 80), dtype=np.float32))])
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        trainer.train_step([(np.array([0, 6]), np.zeros((2, 80), dtype=np.float32))])
    with pytest.raises(CheckpointError, match=r"trainer\.json missing"):
        UnitMelTrainer.resume(tmp_path)


def test_export_loads_as_the_same_model(tones: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path) -> None:
    trainer = UnitMelTrainer(TINY, CLUSTERS)
    _steps(trainer, tones, 5)
    trainer.export(tmp_path / "v", {"codebook": "speech-cb-1"})
    entry: Any = VOCODERS.entry("unit-mel")
    assert "unit-mel" in vocoder_names() and entry.Trainer is UnitMelTrainer and UnitMelTrainer.target is log_mel
    vocoder = load_vocoder("unit-mel", tmp_path / "v", device="cpu")
    assert isinstance(vocoder, UnitMelVocoder)
    assert (vocoder.codebook, vocoder.clusters, vocoder.sample_rate) == ("speech-cb-1", CLUSTERS, 16_000)
    units = tones[0][0]
    assert np.array_equal(vocoder.log_mel_of(units, deduplicated=False), trainer.log_mel_of(units))
    assert json.loads((tmp_path / "v" / "config.json").read_text())["settings"] == TINY.model_dump(mode="json")


def test_synthesis_lengths(tones: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path) -> None:
    UnitMelTrainer(TINY, CLUSTERS).export(tmp_path / "v")
    vocoder = UnitMelVocoder.load(tmp_path / "v", device="cpu")
    assert vocoder.codebook is None
    units = tones[1][0]
    audio = vocoder.synthesize(units, deduplicated=False)
    assert audio.dtype == np.float32 and audio.shape == (len(units) * 320,) and np.abs(audio).max() <= 1
    deduplicated = run_lengths(units)[0]
    frames = len(vocoder.log_mel_of(deduplicated))
    assert frames >= len(deduplicated)
    assert vocoder.synthesize(deduplicated).shape == (frames * 320,)
    assert vocoder.synthesize(np.zeros(0, dtype=np.int64)).shape == (0,)
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        vocoder.synthesize(np.array([7]))


def test_load_refusals_are_one_line(tmp_path: Path) -> None:
    UnitMelTrainer(TINY, CLUSTERS).export(tmp_path / "v")
    config = json.loads((tmp_path / "v" / "config.json").read_text())

    def refused(document: dict[str, object] | None, match: str) -> None:
        if document is not None:
            (tmp_path / "v" / "config.json").write_text(json.dumps(document))
        with pytest.raises(CheckpointError, match=match) as caught:
            UnitMelVocoder.load(tmp_path / "v", device="cpu")
        assert "\n" not in str(caught.value)

    with pytest.raises(CheckpointError, match="not a unit-mel folder"):
        UnitMelVocoder.load(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="needs its folder"):
        UnitMelVocoder.load(None)
    refused({**config, "name": "unit-hifigan"}, "not a unit-mel config")
    refused({**config, "format_version": 99}, "format_version 99")
    refused({**config, "settings": {**config["settings"], "hidden": "wide"}}, "bad settings .*hidden")
    refused({**config, "clusters": CLUSTERS + 1}, "weights do not fit")
    (tmp_path / "v" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="trained with other hidden"):
        UnitMelVocoder.load(tmp_path / "v", UnitMelSettings(hidden=32), device="cpu")


def test_fingerprint_names_weights_and_synthesis(tones: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path) -> None:
    trainer = UnitMelTrainer(TINY, CLUSTERS)
    trainer.export(tmp_path / "a")
    trainer.export(tmp_path / "again")
    _steps(trainer, tones, 1)
    trainer.export(tmp_path / "b")
    a, again, b = (UnitMelVocoder.load(tmp_path / name, device="cpu") for name in ("a", "again", "b"))
    assert a.fingerprint == again.fingerprint != b.fingerprint
    fewer = UnitMelVocoder.load(tmp_path / "a", UnitMelSettings(griffin_lim_iters=2), device="cpu")
    assert fewer.settings.griffin_lim_iters == 2 and fewer.fingerprint != a.fingerprint
