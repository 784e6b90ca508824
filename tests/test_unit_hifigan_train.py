"""unit-hifigan training: speech-resynthesis's recipe on a tiny generator.

It learns, resumes bit-exactly, and what it exports is their layout, read back by the unit-hifigan loader as the
same generator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flows.config import VocoderTrainingConfig
from im2sp_models.errors import CheckpointError
from im2sp_models.unit_hifigan_train import UnitHifiGanTrainer, UnitHifiGanTrainSettings, waveform_target
from im2sp_models.vocoders import VOCODERS, UnitHifiGanVocoder, load_vocoder, training_settings
from storage.errors import ConfigError
from tests.tiny_datasets import TINY_HIFIGAN

TINY = TINY_HIFIGAN
SETTINGS = UnitHifiGanTrainSettings.model_validate(TINY)
CLUSTERS = 5


def _utterance(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Runs of units, each frame 320 samples of a tone at 250 + 200·unit Hz; the int16 target."""
    units = np.repeat(rng.integers(0, CLUSTERS, 6), rng.integers(1, 4, 6))
    pitch = np.repeat(250.0 + 200.0 * units, 320)
    wave = 0.4 * np.sin(2 * np.pi * np.cumsum(pitch) / 16_000)
    return units, waveform_target(wave, 16_000, len(units), SETTINGS)


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """One intra-op thread: tiny convolutions gain nothing from two, and lose much when the other core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tones() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [_utterance(rng) for _ in range(6)]


def _steps(
    trainer: UnitHifiGanTrainer, data: list[tuple[np.ndarray, np.ndarray]], count: int
) -> list[dict[str, float]]:
    out = []
    for _ in range(count):
        start = trainer.step * SETTINGS.batch_size
        out.append(trainer.train_step([data[(start + i) % len(data)] for i in range(SETTINGS.batch_size)]))
    return out


def test_targets_are_peak_normalised_int16_frames() -> None:
    target = waveform_target(np.array([0.0, 0.5, -0.25] * 200), 16_000, 3, SETTINGS)
    assert target.shape == (3, 320) and target.dtype == np.int16
    assert target.max() == round(0.95 * 32767) and not target[-1, 280:].any()  # padded with silence
    with pytest.raises(ValueError, match="16000 Hz, the recording is at 8000 Hz"):
        waveform_target(np.zeros(10), 8_000, 1, SETTINGS)


def test_losses_fall_on_tones(tones: list[tuple[np.ndarray, np.ndarray]]) -> None:
    history = _steps(UnitHifiGanTrainer(SETTINGS, CLUSTERS), tones, 24)
    first, last = history[:4], history[-4:]
    for name in ("mel_l1", "loss", "duration_loss"):
        assert np.mean([x[name] for x in last]) < 0.8 * np.mean([x[name] for x in first]), name
    assert history[-1]["lr"] == pytest.approx(2e-3 * 0.9**5)  # decayed every lr_decay_every steps


def test_resume_continues_bit_exactly(tones: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path) -> None:
    whole = UnitHifiGanTrainer(SETTINGS, CLUSTERS)
    expected = _steps(whole, tones, 4)
    first = UnitHifiGanTrainer(SETTINGS, CLUSTERS)
    losses = _steps(first, tones, 2)
    first.save_checkpoint(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {
        "g_00000002",
        "do_00000002",
        "config.json",
        "trainer.json",
        "rng.safetensors",
    }
    others = torch.load(str(tmp_path / "ckpt" / "do_00000002"), weights_only=True)
    assert set(others) == {"mpd", "msd", "optim_g", "optim_d", "steps", "epoch"} and others["steps"] == 1
    torch.manual_seed(123), torch.rand(5)  # the process's random stream moves; the trainer's must not care
    resumed = UnitHifiGanTrainer.resume(tmp_path / "ckpt")
    assert resumed.step == 2
    losses += _steps(resumed, tones, 2)
    assert losses == expected
    for ours, theirs in ((resumed.generator, whole.generator), (resumed.mpd, whole.mpd), (resumed.msd, whole.msd)):
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
            assert torch.equal(a, b), name
    (tmp_path / "ckpt" / "trainer.json").unlink()
    with pytest.raises(CheckpointError, match="not a unit-hifigan trainer checkpoint"):
        UnitHifiGanTrainer.resume(tmp_path / "ckpt")


def test_export_is_their_layout_and_loads_as_the_same_generator(
    tones: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path
) -> None:
    trainer = UnitHifiGanTrainer(SETTINGS, CLUSTERS)
    _steps(trainer, tones, 3)
    trainer.export(tmp_path / "v", {"codebook": "speech-cb-1"})
    state = torch.load(str(tmp_path / "v" / "g_00000003"), weights_only=True)["generator"]
    assert {"conv_pre.weight_g", "conv_pre.weight_v", "ups.0.weight_g", "resblocks.0.convs1.0.weight_v"} <= set(state)
    assert {"dict.weight", "dur_predictor.conv1.0.weight", "dur_predictor.proj.weight"} <= set(state)
    config = json.loads((tmp_path / "v" / "config.json").read_text())
    assert (
        config["num_embeddings"] == CLUSTERS and config["code_hop_size"] == 320 and config["codebook"] == "speech-cb-1"
    )
    assert config["dur_predictor_params"]["encoder_embed_dim"] == 8 and config["dur_prediction_weight"] == 1.0

    vocoder = load_vocoder("unit-hifigan", tmp_path / "v", device="cpu")
    assert isinstance(vocoder, UnitHifiGanVocoder) and vocoder.has_duration_predictor
    units = tones[0][0]
    trainer.generator.eval()
    with torch.inference_mode():
        expected = trainer.generator(torch.from_numpy(units.astype(np.int64)).view(1, -1)).reshape(-1).numpy()
    spoken = vocoder.synthesize(units, deduplicated=False)
    assert spoken.shape == (len(units) * 320,) and np.allclose(spoken, expected, atol=1e-5)
    deduplicated = vocoder.synthesize(np.array([0, 3, 1]), deduplicated=True)  # durations predicted
    assert deduplicated.size >= 3 * 320 and deduplicated.size % 320 == 0


def test_refusals_are_one_line() -> None:
    entry: Any = VOCODERS.entry("unit-hifigan")
    assert entry.Trainer is UnitHifiGanTrainer
    with pytest.raises(ConfigError, match="product of upsample_rates must be code_hop_size"):
        training_settings("unit-hifigan", {**TINY, "upsample_rates": [8, 5, 4], "upsample_kernel_sizes": [16, 11, 8]})
    with pytest.raises(ConfigError, match="minus its rate must be even"):
        training_settings("unit-hifigan", {**TINY, "upsample_kernel_sizes": [16, 10, 16]})
    with pytest.raises(ValueError, match="precision bf16 needs a CUDA device"):
        UnitHifiGanTrainer(SETTINGS.model_copy(update={"precision": "bf16"}), CLUSTERS, device="cpu")
    with pytest.raises(ValueError, match="vocoder unit-hifigan: learning_rat"):
        VocoderTrainingConfig.model_validate({"kind": "unit-hifigan", "settings": {"learning_rat": 1e-3}})
    assert VocoderTrainingConfig.model_validate({"kind": "unit-hifigan", "settings": TINY}).kind == "unit-hifigan"
    trainer = UnitHifiGanTrainer(SETTINGS, CLUSTERS)
    with pytest.raises(ValueError, match=r"3 units need \(3, 320\) samples"):
        trainer.train_step([(np.array([0, 1, 2]), np.zeros((2, 320), dtype=np.int16))])
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        trainer.train_step([(np.array([0, 5]), np.zeros((2, 320), dtype=np.int16))])
