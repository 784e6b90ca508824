from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from im2sp_models.errors import CheckpointError
from im2sp_models.unit_hifigan_net import fold_weight_norm
from im2sp_models.unit_hifigan_net import generator as _network
from im2sp_models.vocoders import UnitHifiGanVocoder, load_vocoder, vocoder_names

CONFIG: dict[str, Any] = {
    "resblock": "1",
    "upsample_rates": [5, 4, 2],
    "upsample_kernel_sizes": [11, 8, 4],  # k - u even, as the released configs: exactly u samples per step
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 5],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    "num_embeddings": 12,
    "embedding_dim": 8,
    "model_in_dim": 8,
    "sampling_rate": 16000,
    "dur_prediction_weight": 1.0,
    "dur_predictor_params": {
        "encoder_embed_dim": 8,
        "var_pred_hidden_dim": 8,
        "var_pred_kernel_size": 3,
        "var_pred_dropout": 0.5,
    },
}


def _checkpoint(folder: Path, config: dict[str, Any], *, parametrized: bool = False) -> Any:
    """A generator trained nowhere, saved as speech-resynthesis does: weight norm on, {"generator": …}."""
    torch.manual_seed(0)
    network = _network(config)
    norm: Any = torch.nn.utils.parametrizations.weight_norm if parametrized else torch.nn.utils.weight_norm
    convs = [network.conv_pre, *network.ups, network.conv_post]
    for block in network.resblocks:
        convs += [*getattr(block, "convs1", []), *getattr(block, "convs2", []), *getattr(block, "convs", [])]
    for conv in convs:
        norm(conv)
    folder.mkdir(parents=True)
    torch.save({"generator": network.state_dict()}, folder / "g_00400000")
    (folder / "config.json").write_text(json.dumps(config))
    return network.eval()


@pytest.mark.parametrize("parametrized", [False, True])
def test_checkpoint_loads_with_weight_norm_removed_and_keeps_the_output(tmp_path: Path, parametrized: bool) -> None:
    original = _checkpoint(tmp_path / "v", CONFIG, parametrized=parametrized)
    keys = set(torch.load(tmp_path / "v" / "g_00400000", weights_only=True)["generator"])
    suffix = "parametrizations.weight.original0" if parametrized else "weight_g"
    assert f"conv_pre.{suffix}" in keys and f"resblocks.5.convs2.2.{suffix}" in keys and "dict.weight" in keys
    assert "dur_predictor.conv1.0.weight" in keys and "dur_predictor.proj.weight" in keys
    vocoder = UnitHifiGanVocoder.load(tmp_path / "v", device="cpu")
    assert vocoder.hop == 40 and vocoder.has_duration_predictor
    assert not any("weight_g" in k or "parametrizations" in k for k in vocoder.network.state_dict())
    units = np.array([3, 3, 7, 1, 1, 1, 11, 0])
    audio = vocoder.synthesize(units, deduplicated=False)
    assert audio.dtype == np.float32 and audio.shape == (len(units) * vocoder.hop,) and np.abs(audio).max() <= 1
    with torch.no_grad():
        expected = original(torch.from_numpy(units)[None]).reshape(-1).numpy()
    np.testing.assert_allclose(audio, expected, atol=1e-5)


def test_deduplicated_units_are_expanded_by_predicted_durations(tmp_path: Path) -> None:
    _checkpoint(tmp_path / "v", CONFIG)
    vocoder = UnitHifiGanVocoder.load(tmp_path / "v" / "g_00400000", device="cpu")
    units = np.array([3, 7, 1, 11])
    with torch.no_grad():
        x = vocoder.network.dict(torch.from_numpy(units)[None])
        log_durations = vocoder.network.dur_predictor(x)
    frames = int(torch.clamp(torch.round(torch.exp(log_durations) - 1).long(), min=1).sum())
    assert vocoder.synthesize(units).shape == (frames * vocoder.hop,)


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no generator"):
        (tmp_path / "empty").mkdir()
        UnitHifiGanVocoder.load(tmp_path / "empty")
    _checkpoint(tmp_path / "f0", {**CONFIG, "f0": True})
    with pytest.raises(CheckpointError, match="f0"):
        UnitHifiGanVocoder.load(tmp_path / "f0")
    _checkpoint(tmp_path / "other", {**CONFIG, "upsample_initial_channel": 16})
    (tmp_path / "other" / "config.json").write_text(json.dumps(CONFIG))
    with pytest.raises(CheckpointError, match="do not fit"):
        UnitHifiGanVocoder.load(tmp_path / "other")
    with pytest.raises(CheckpointError, match="missing its v part"):
        fold_weight_norm({"conv.weight_g": torch.ones(2, 1, 1)})


def test_registry_speakers_and_a_checkpoint_without_duration_predictor(tmp_path: Path) -> None:
    assert vocoder_names() == ["unit-hifigan", "unit-mel"]
    speakers = {k: v for k, v in CONFIG.items() if not k.startswith(("dur_", "model_in"))} | {
        "multispkr": True,
        "num_speakers": 4,
    }
    _checkpoint(tmp_path / "spk", speakers)
    (tmp_path / "spk" / "config.json").write_text(
        json.dumps({**speakers, "dur_predictor_params": CONFIG["dur_predictor_params"]})
    )
    vocoder = load_vocoder("unit-hifigan", tmp_path / "spk", device="cpu")
    assert isinstance(vocoder, UnitHifiGanVocoder)
    assert not vocoder.has_duration_predictor  # the checkpoint has none: units are taken as full rate
    assert vocoder.network.conv_pre.weight.shape[1] == 16  # codes + speaker embedding
    one, two = vocoder.synthesize(np.array([1, 2, 3]), speaker=1), vocoder.synthesize(np.array([1, 2, 3]), speaker=2)
    assert one.shape == two.shape == (3 * vocoder.hop,) and not np.allclose(one, two)
