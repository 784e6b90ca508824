"""The model half of ``unit-mel`` (:mod:`im2sp_models.unit_mel`): settings, analysis, network, synthesis, files.

The network embeds each unit, gives it context with residual dilated 1-D convolutions (non-causal; the
receptive field of the defaults is 121 frames, 2.4 s) and projects to ``n_mels`` log-mel bins at the unit
rate (50 Hz). A duration predictor beside it maps each deduplicated unit to ``log(1 + run length)``. The
waveform comes from mel inversion and Griffin-Lim with the analysis parameters of :func:`log_mel` (librosa,
n_fft 1024, hop 320, magnitude mel): on the demo's recordings that round trip keeps the recordings' ASR word
error rate, so what the network predicts is what decides intelligibility.

Frame ``i`` of a log-mel is centred on sample ``320·i + 200``: the centre of speech unit ``i``'s 400-sample
window (HuBERT's and mfcc's framing). A vocoder folder is ``config.json`` (name, format_version, clusters,
settings, extras such as ``codebook``) + ``model.safetensors``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError

from im2sp_models.errors import CheckpointError, one_line
from im2sp_models.registry import ModelSettings

NAME = "unit-mel"
#: The version of the exported folder and the trainer checkpoint; loaders refuse others.
FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class UnitMelSettings(ModelSettings):
    """Everything that shapes a unit-mel model, its training and its synthesis (saved in its config.json)."""

    sample_rate: int = Field(16_000, ge=1)
    n_mels: int = Field(80, ge=1)
    n_fft: int = Field(1024, ge=16)
    hop: int = Field(320, ge=1)
    #: Samples from a unit frame's start to its centre: half of HuBERT's and mfcc's 400-sample window.
    frame_offset: int = Field(200, ge=0)
    #: Magnitudes below this are floored before the log (silence is log(mel_floor)).
    mel_floor: float = Field(1e-5, gt=0)
    hidden: int = Field(256, ge=1)
    layers: int = Field(8, ge=1)
    kernel: int = Field(5, ge=1)
    #: Dilations run 1, 2, 4, … up to 2^(dilation_cycle − 1), then start again.
    dilation_cycle: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    #: Share of training input units replaced by random ones (a regulariser: held-out speech, few utterances).
    unit_noise: float = Field(0.0, ge=0, lt=1)
    duration_hidden: int = Field(128, ge=1)
    duration_layers: int = Field(2, ge=1)
    duration_kernel: int = Field(3, ge=1)
    duration_weight: float = Field(1.0, ge=0)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(20, ge=0)
    #: Cosine decay to ``lr_floor · lr`` over this many steps after warm-up; 0: the rate stays at ``lr``.
    decay_steps: int = Field(0, ge=0)
    lr_floor: float = Field(0.1, ge=0, le=1)
    grad_clip: float = Field(1.0, gt=0)
    #: Utterances per optimizer step (one random crop of ``segment_frames`` each).
    batch_size: int = Field(8, ge=1)
    segment_frames: int = Field(128, ge=1)
    griffin_lim_iters: int = Field(48, ge=1)
    seed: int = 0


def log_mel(wave: np.ndarray, sample_rate: int, frames: int, settings: UnitMelSettings | None = None) -> np.ndarray:
    """The ``(frames, n_mels)`` float32 log-mel of a mono waveform at the unit rate, frame ``i`` at unit ``i``.

    Args:
        wave: Mono samples (resampled to ``settings.sample_rate`` when ``sample_rate`` differs).
        sample_rate: Their rate.
        frames: The number of full-rate speech units of the utterance: the result is trimmed or padded
            (with silence, ``log(mel_floor)``) to it.
        settings: The analysis parameters (defaults: :class:`UnitMelSettings`).
    """
    import librosa

    s = settings or UnitMelSettings()
    samples = np.asarray(wave, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"log_mel takes a mono waveform, got shape {samples.shape}")
    if sample_rate != s.sample_rate:
        import soxr

        samples = np.asarray(soxr.resample(samples, sample_rate, s.sample_rate, quality="HQ"), dtype=np.float32)
    # librosa centres frame j on sample hop·j; dropping frame_offset samples centres it on the unit's window.
    mel = librosa.feature.melspectrogram(
        y=samples[s.frame_offset :], sr=s.sample_rate, n_fft=s.n_fft, hop_length=s.hop, n_mels=s.n_mels, power=1.0
    )
    values = np.log(np.maximum(mel, s.mel_floor)).T[:frames]
    if len(values) < frames:
        silence = np.full((frames - len(values), s.n_mels), math.log(s.mel_floor), dtype=values.dtype)
        values = np.concatenate([values, silence]) if len(values) else silence
    return np.ascontiguousarray(values, dtype=np.float32)


def griffin_lim(values: np.ndarray, settings: UnitMelSettings, iterations: int | None = None) -> np.ndarray:
    """Waveform of a ``(T, n_mels)`` log-mel: ``T × hop`` float32 samples in [-1, 1] (seeded, deterministic)."""
    import librosa

    s = settings
    frames = len(values)
    if frames == 0:
        return np.zeros(0, dtype=np.float32)
    magnitude = librosa.feature.inverse.mel_to_stft(
        np.exp(values.astype(np.float64).T), sr=s.sample_rate, n_fft=s.n_fft, power=1.0
    )
    length = frames * s.hop
    if length <= s.frame_offset:
        return np.zeros(length, dtype=np.float32)
    audio = librosa.griffinlim(
        magnitude,
        n_iter=iterations or s.griffin_lim_iters,
        hop_length=s.hop,
        n_fft=s.n_fft,
        length=length - s.frame_offset,
        random_state=s.seed,
    )
    audio = np.concatenate([np.zeros(length - len(audio)), audio])  # back to where log_mel took the frames
    return np.asarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)


def run_lengths(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deduplicated units and the length of each run of a full-rate sequence."""
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    if len(units) == 0:
        return units, units.copy()
    starts = np.flatnonzero(np.concatenate([[True], units[1:] != units[:-1]]))
    return units[starts], np.diff(np.append(starts, len(units)))


def build_network(settings: UnitMelSettings, clusters: int) -> Any:
    """A fresh (torch's RNG-initialised) unit-mel network: ``network(units)`` → log-mel, ``.duration(dedup)``."""
    import torch
    from torch import nn

    s = settings

    class ConvBlock(nn.Module):
        """Pre-norm residual block: LayerNorm → dilated conv → GELU → dropout → 1×1 conv."""

        def __init__(self, channels: int, kernel: int, dilation: int, dropout: float) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(channels)
            self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=(kernel - 1) * dilation // 2)
            self.mix = nn.Conv1d(channels, channels, 1)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x: Any) -> Any:  # (B, C, T)
            y = self.norm(x.transpose(1, 2)).transpose(1, 2)
            return x + self.mix(self.dropout(nn.functional.gelu(self.conv(y))))

    class DurationPredictor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(clusters, s.duration_hidden)
            self.convs = nn.ModuleList(
                nn.Conv1d(s.duration_hidden, s.duration_hidden, s.duration_kernel, padding=(s.duration_kernel - 1) // 2)
                for _ in range(s.duration_layers)
            )
            self.norms = nn.ModuleList(nn.LayerNorm(s.duration_hidden) for _ in range(s.duration_layers))
            self.dropout = nn.Dropout(s.dropout)
            self.proj = nn.Linear(s.duration_hidden, 1)

        def forward(self, units: Any) -> Any:  # (B, N) deduplicated → (B, N) log(1 + duration)
            x = self.embed(units)
            for conv, norm in zip(self.convs, self.norms, strict=True):
                x = self.dropout(norm(torch.relu(conv(x.transpose(1, 2))).transpose(1, 2)))
            return self.proj(x).squeeze(2)

    class UnitMel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(clusters, s.hidden)
            self.blocks = nn.ModuleList(
                ConvBlock(s.hidden, s.kernel, 2 ** (i % s.dilation_cycle), s.dropout) for i in range(s.layers)
            )
            self.norm = nn.LayerNorm(s.hidden)
            self.proj = nn.Linear(s.hidden, s.n_mels)
            self.duration = DurationPredictor()
            with torch.no_grad():  # start at silence-ish rather than 0 (= magnitude 1, loud)
                self.proj.bias.fill_(math.log(s.mel_floor) / 2)

        def forward(self, units: Any) -> Any:  # (B, T) full-rate → (B, T, n_mels) log-mel
            x = self.embed(units).transpose(1, 2)
            for block in self.blocks:
                x = block(x)
            return self.proj(self.norm(x.transpose(1, 2)))

    return UnitMel()


def expand(network: Any, units: np.ndarray, device: str) -> np.ndarray:
    """Full-rate units of deduplicated ones: each repeated ``max(1, round(exp(d) − 1))`` times (predicted d)."""
    import torch

    codes = torch.from_numpy(np.asarray(units, dtype=np.int64).reshape(1, -1)).to(device)
    with torch.inference_mode():
        durations = torch.clamp(torch.round(torch.exp(network.duration(codes)) - 1).long(), min=1)
    return np.repeat(np.asarray(units, dtype=np.int64).reshape(-1), durations.reshape(-1).cpu().numpy())


def predict_log_mel(network: Any, units: np.ndarray, device: str) -> np.ndarray:
    """``(T, n_mels)`` float32 log-mel of full-rate units (inference: no dropout)."""
    import torch

    codes = torch.from_numpy(np.asarray(units, dtype=np.int64).reshape(1, -1)).to(device)
    with torch.inference_mode():
        return np.asarray(network(codes)[0].float().cpu().numpy(), dtype=np.float32)


def check_units(units: np.ndarray, clusters: int) -> np.ndarray:
    """``units`` flattened to int64, checked to be integers in ``[0, clusters)``."""
    array = np.asarray(units).reshape(-1)
    if array.size and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= clusters):
        raise ValueError(f"units must be integers in [0, {clusters})")
    return array.astype(np.int64)


def export_folder(
    folder: Path, network: Any, settings: UnitMelSettings, clusters: int, extra: dict[str, Any] | None
) -> None:
    """Write the vocoder folder: ``config.json`` (name, format, settings, clusters, extras) + ``model.safetensors``."""
    from safetensors.torch import save_file

    config: dict[str, Any] = {
        "name": NAME,
        "format_version": FORMAT_VERSION,
        "clusters": clusters,
        "settings": settings.model_dump(mode="json"),
    }
    clash = sorted(set(config) & set(extra or {}))
    if clash:
        raise ValueError(f"extra keys {clash} would overwrite the vocoder's own config keys")
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in network.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps({**config, **(extra or {})}, indent=2, sort_keys=True) + "\n")


def read_config(checkpoint: Path | None) -> tuple[dict[str, Any], UnitMelSettings]:
    """The config.json of a unit-mel folder and its settings.

    Raises:
        CheckpointError: One line saying what is missing or wrong.
    """
    if checkpoint is None:
        raise CheckpointError("unit-mel needs its folder (config.json + model.safetensors from train-vocoder)")
    folder = Path(checkpoint)
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if not folder.is_dir() or missing:
        raise CheckpointError(f"{folder}: not a unit-mel folder (missing {', '.join(missing or [CONFIG_FILE])})")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{folder / CONFIG_FILE}: not JSON ({one_line(error)})") from None
    if not isinstance(config, dict) or config.get("name") != NAME:
        found = config.get("name") if isinstance(config, dict) else None
        raise CheckpointError(f"{folder / CONFIG_FILE}: not a unit-mel config (name {found!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder / CONFIG_FILE}: format_version {config.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    clusters = config.get("clusters")
    if not isinstance(clusters, int) or isinstance(clusters, bool) or clusters < 1:
        raise CheckpointError(f"{folder / CONFIG_FILE}: clusters must be a positive integer, got {clusters!r}")
    try:
        settings = UnitMelSettings.model_validate(config.get("settings", {}))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise CheckpointError(f"{folder / CONFIG_FILE}: bad settings ({problems})") from None
    return config, settings
