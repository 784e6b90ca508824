"""Training ``unit-hifigan``: speech-resynthesis's recipe for the unit HiFi-GAN that the loader reads.

Each step crops one random segment of ``segment_size`` samples (whole unit frames: ``code_hop_size`` samples per
unit) from each utterance of the batch (one shorter than a segment is repeated until it is long enough, as their
dataset does), then: the discriminators (multi-period and multi-scale) step on least-squares losses of the
recordings against the generator's output; the generator steps on ``45 · mel L1`` + feature matching + the
least-squares adversarial losses + ``dur_prediction_weight ·`` the duration predictor's MSE on
``log(1 + run length)`` of the segment's deduplicated units (its first and last runs left out, as they may be
cut). Both optimisers are AdamW (``learning_rate``, betas ``adam_b1``/``adam_b2``), the rate multiplied by
``lr_decay`` every ``lr_decay_every`` steps (their per-epoch decay; here the data is drawn per step, not per
epoch). ``precision: bf16`` runs the networks under bfloat16 autocast on a GPU (the losses stay float32).

Recordings are peak-normalised to 0.95 (HiFi-GAN's dataset) and held as int16 frames of ``code_hop_size``
samples. A checkpoint folder is their layout — ``g_XXXXXXXX`` (``{"generator"}``), ``do_XXXXXXXX``
(``mpd``, ``msd``, ``optim_g``, ``optim_d``, ``steps``, ``epoch``), ``config.json`` — plus ``trainer.json`` and
``rng.safetensors`` for a bit-exact resume on the CPU. The export is ``g_XXXXXXXX`` + ``config.json``: what
:class:`im2sp_models.vocoders.UnitHifiGanVocoder` and speech-resynthesis's ``inference.py`` load.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError, one_line
from im2sp_models.registry import ModelSettings
from im2sp_models.trainer_streams import TRAINER_FILE, RandomStreams, write_trainer_document
from im2sp_models.unit_hifigan_net import (
    adversarial_loss,
    discriminator_loss,
    discriminators,
    feature_matching_loss,
    generator,
    mel_spectrogram,
    slaney_mel_filters,
)

NAME = "unit-hifigan"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1
#: The mel L1's weight in the generator's loss (HiFi-GAN's).
MEL_WEIGHT = 45.0
#: Recordings are scaled to this peak before training (HiFi-GAN's dataset).
PEAK = 0.95


class UnitHifiGanTrainSettings(ModelSettings):
    """The generator's shape and the recipe (defaults: speech-resynthesis's ``hubert100_dw1.0.json``)."""

    resblock: Literal["1", "2"] = "1"
    upsample_rates: tuple[int, ...] = (5, 4, 4, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (11, 8, 8, 4, 4)
    upsample_initial_channel: int = Field(512, ge=1)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    embedding_dim: int = Field(128, ge=1)
    #: Train the duration predictor (deduplicated units can then be spoken).
    duration_predictor: bool = True
    dur_prediction_weight: float = Field(1.0, gt=0)
    var_pred_hidden_dim: int = Field(128, ge=1)
    var_pred_kernel_size: int = Field(3, ge=1)
    var_pred_dropout: float = Field(0.5, ge=0, lt=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    adam_b1: float = Field(0.8, ge=0, lt=1)
    adam_b2: float = Field(0.99, ge=0, lt=1)
    lr_decay: float = Field(0.999, gt=0, le=1)
    #: Optimiser steps between two multiplications by ``lr_decay`` (their epoch).
    lr_decay_every: int = Field(1000, ge=1)
    segment_size: int = Field(8960, ge=1)
    #: Samples per unit frame: the product of ``upsample_rates`` (units at 50 Hz, 16 kHz audio).
    code_hop_size: int = Field(320, ge=1)
    sampling_rate: int = Field(16_000, ge=1)
    num_mels: int = Field(80, ge=1)
    n_fft: int = Field(1024, ge=16)
    hop_size: int = Field(256, ge=1)
    win_size: int = Field(1024, ge=16)
    fmin: float = Field(0.0, ge=0)
    #: Top of the mel loss's filters; None: half the sampling rate.
    fmax_for_loss: float | None = None
    #: The discriminators' channel widths are the recipe's divided by this (1: the recipe's).
    discriminator_divisor: Literal[1, 2, 4, 8, 16] = 1
    precision: Literal["fp32", "bf16"] = "fp32"
    seed: int = 1234

    @model_validator(mode="after")
    def _consistent(self) -> UnitHifiGanTrainSettings:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes need as many entries")
        if any((k - u) % 2 for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True)):
            raise ValueError("each upsample kernel size minus its rate must be even (the output is rate × input)")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes need as many entries")
        if math.prod(self.upsample_rates) != self.code_hop_size:
            raise ValueError(f"the product of upsample_rates must be code_hop_size ({self.code_hop_size})")
        if self.segment_size % self.code_hop_size:
            raise ValueError(f"segment_size must be a multiple of code_hop_size ({self.code_hop_size})")
        if self.upsample_initial_channel % 2 ** len(self.upsample_rates):
            raise ValueError(f"upsample_initial_channel must be divisible by {2 ** len(self.upsample_rates)}")
        return self

    @property
    def segment_frames(self) -> int:
        """Unit frames per training segment."""
        return self.segment_size // self.code_hop_size


def hifigan_config(settings: UnitHifiGanTrainSettings, clusters: int) -> dict[str, Any]:
    """The speech-resynthesis ``config.json`` of a generator for ``clusters`` units, with its training recipe."""
    config: dict[str, Any] = settings.model_dump(mode="json")
    for key in ("duration_predictor", "var_pred_hidden_dim", "var_pred_kernel_size", "var_pred_dropout"):
        config.pop(key)
    config |= {"num_embeddings": clusters, "model_in_dim": settings.embedding_dim, "f0": False, "num_gpus": 0}
    config["fmax"] = settings.sampling_rate // 2
    if settings.duration_predictor:
        config["dur_predictor_params"] = {
            "encoder_embed_dim": settings.embedding_dim,
            "var_pred_hidden_dim": settings.var_pred_hidden_dim,
            "var_pred_kernel_size": settings.var_pred_kernel_size,
            "var_pred_dropout": settings.var_pred_dropout,
        }
    else:
        config.pop("dur_prediction_weight")
    return config


def waveform_target(
    wave: np.ndarray, sample_rate: int, frames: int, settings: UnitHifiGanTrainSettings | None = None
) -> np.ndarray:
    """An utterance's training target: its recording peak-normalised to 0.95, as ``(frames, code_hop_size)`` int16.

    Trimmed or padded with silence to ``frames`` unit frames.

    Raises:
        ValueError: A recording at another rate than ``sampling_rate``.
    """
    s = settings or UnitHifiGanTrainSettings()
    if sample_rate != s.sampling_rate:
        raise ValueError(f"unit-hifigan trains at {s.sampling_rate} Hz, the recording is at {sample_rate} Hz")
    audio = np.asarray(wave, dtype=np.float64).reshape(-1)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    audio = audio * (PEAK / peak) if peak > 0 else audio
    framed = np.zeros(frames * s.code_hop_size)
    framed[: min(audio.size, framed.size)] = audio[: framed.size]
    return np.round(framed * 32767).astype(np.int16).reshape(frames, s.code_hop_size)


def _state(module: Any) -> dict[str, Any]:
    return {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}


class UnitHifiGanTrainer:
    """Trains a unit HiFi-GAN for ``clusters`` units, seeded by ``settings.seed``.

    Args:
        settings: The generator's shape and the recipe.
        clusters: The speech codebook's K (units are ``0 … clusters − 1``).
        device: ``cpu``, ``cuda`` or ``auto`` (bit-exact resumption is promised on the CPU).

    Raises:
        ValueError: ``precision: bf16`` without a GPU, or ``clusters`` < 1.
    """

    Settings: ClassVar[type[ModelSettings]] = UnitHifiGanTrainSettings
    #: What train-vocoder computes from each recording: ``(frames, code_hop_size)`` int16 samples.
    target = staticmethod(waveform_target)

    def __init__(self, settings: UnitHifiGanTrainSettings, clusters: int, *, device: str = "cpu") -> None:
        import torch

        if clusters < 1:
            raise ValueError(f"clusters must be ≥ 1, got {clusters}")
        self.settings, self.clusters = settings, clusters
        self.device = resolve_device(device)
        if settings.precision == "bf16" and not self.device.startswith("cuda"):
            raise ValueError("unit-hifigan precision bf16 needs a CUDA device; use fp32 on the CPU")
        self.step = 0
        self.config = hifigan_config(settings, clusters)
        self.streams = RandomStreams(self.device, settings.seed)
        with self.streams.seeded(settings.seed):
            self.generator = generator(self.config, training=True).to(self.device)
            self.mpd, self.msd = (d.to(self.device) for d in discriminators(settings.discriminator_divisor))
        betas = (settings.adam_b1, settings.adam_b2)
        self.optim_g = torch.optim.AdamW(self.generator.parameters(), settings.learning_rate, betas=betas)
        discriminator_parameters = [*self.msd.parameters(), *self.mpd.parameters()]
        self.optim_d = torch.optim.AdamW(discriminator_parameters, settings.learning_rate, betas=betas)
        fmax = settings.fmax_for_loss or settings.sampling_rate / 2
        filters = slaney_mel_filters(settings.sampling_rate, settings.n_fft, settings.num_mels, settings.fmin, fmax)
        self._filters = torch.from_numpy(filters).to(self.device)

    def learning_rate(self, step: int) -> float:
        """The rate of optimiser step ``step``: ``learning_rate · lr_decay ^ (step // lr_decay_every)``."""
        s = self.settings
        return float(s.learning_rate * s.lr_decay ** (step // s.lr_decay_every))

    def _segments(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """One random crop of ``segment_frames`` per utterance: units ``(B, F)`` and audio ``(B, F · hop)``."""
        frames, hop = self.settings.segment_frames, self.settings.code_hop_size
        units = np.zeros((len(batch), frames), dtype=np.int64)
        audio = np.zeros((len(batch), frames * hop), dtype=np.float32)
        for index, (codes, target) in enumerate(batch):
            codes = np.asarray(codes, dtype=np.int64).reshape(-1)
            samples = np.asarray(target)
            if samples.shape != (len(codes), hop) or len(codes) == 0:
                raise ValueError(f"pair {index}: {len(codes)} units need ({len(codes)}, {hop}) samples")
            if int(codes.min()) < 0 or int(codes.max()) >= self.clusters:
                raise ValueError(f"pair {index}: units outside [0, {self.clusters})")
            repeats = -(-frames // len(codes))
            codes, samples = np.tile(codes, repeats), np.tile(samples, (repeats, 1))
            start = int(self.streams.crops.integers(0, len(codes) - frames + 1))
            units[index] = codes[start : start + frames]
            scale = 1 / 32768 if samples.dtype == np.int16 else 1.0
            audio[index] = samples[start : start + frames].reshape(-1).astype(np.float32) * scale
        return units, audio

    def _duration_loss(self, codes: Any, features: Any) -> Any:
        """MSE of the predicted ``log(1 + run length)`` of each whole run of the segments' units."""
        import torch

        predictor = self.generator.dur_predictor
        rows, targets = [], []
        for row in range(codes.shape[0]):
            _, counts = torch.unique_consecutive(codes[row], return_counts=True)
            starts = torch.cumsum(counts, 0) - counts
            if len(counts) > 2:  # the first and last runs may be cut by the crop
                counts, starts = counts[1:-1], starts[1:-1]
            rows.append(features[row, starts])
            targets.append(torch.log1p(counts.float()))
        padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
        mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(t), dtype=torch.bool) for t in targets], True)
        predicted = predictor(padded)[mask.to(padded.device)]
        return torch.nn.functional.mse_loss(predicted.float(), torch.cat(targets).to(predicted.device))

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.settings.precision == "bf16":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _mel(self, wave: Any) -> Any:
        s = self.settings
        return mel_spectrogram(wave, self._filters, s.n_fft, s.hop_size, s.win_size)

    def train_step(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """One discriminator and one generator step on (full-rate units ``(T,)``, target ``(T, hop)``) pairs.

        Returns:
            ``loss`` (the generator's total), ``mel_l1`` (unweighted), ``feature_matching``, ``adversarial``,
            ``duration_loss``, ``discriminator`` and ``lr``.

        Raises:
            ValueError: An empty batch, units out of range, or a target of another shape.
        """
        import torch

        if not batch:
            raise ValueError("train_step needs at least one (units, samples) pair")
        units_np, audio_np = self._segments(batch)
        codes = torch.from_numpy(units_np).to(self.device)
        real = torch.from_numpy(audio_np).to(self.device).unsqueeze(1)
        lr = self.learning_rate(self.step)
        for optimizer in (self.optim_g, self.optim_d):
            for group in optimizer.param_groups:
                group["lr"] = lr
        with self.streams.own():
            for module in (self.generator, self.mpd, self.msd):
                module.train()
            with self._autocast():
                features = self.generator.dict(codes)
                duration = self._duration_loss(codes, features) if self.generator.dur_predictor else None
                fake = self.generator.body(features.transpose(1, 2)).float()
            real_mel = self._mel(real.squeeze(1))
            fake_mel = self._mel(fake.squeeze(1))

            self.optim_d.zero_grad(set_to_none=True)
            with self._autocast():
                period = self.mpd(real, fake.detach())
                scale = self.msd(real, fake.detach())
            d_loss = discriminator_loss(period[0], period[1]) + discriminator_loss(scale[0], scale[1])
            d_loss.backward()
            self.optim_d.step()

            self.optim_g.zero_grad(set_to_none=True)
            mel_l1 = torch.nn.functional.l1_loss(fake_mel, real_mel)
            with self._autocast():
                period = self.mpd(real, fake)
                scale = self.msd(real, fake)
            matching = feature_matching_loss(period[2], period[3]) + feature_matching_loss(scale[2], scale[3])
            adversarial = adversarial_loss(period[1]) + adversarial_loss(scale[1])
            g_loss = MEL_WEIGHT * mel_l1 + matching + adversarial
            if duration is not None:
                g_loss = g_loss + self.settings.dur_prediction_weight * duration
            g_loss.backward()
            self.optim_g.step()
        self.step += 1
        return {
            "loss": float(g_loss.detach()),
            "mel_l1": float(mel_l1.detach()),
            "feature_matching": float(matching.detach()),
            "adversarial": float(adversarial.detach()),
            "duration_loss": float(duration.detach()) if duration is not None else 0.0,
            "discriminator": float(d_loss.detach()),
            "lr": lr,
        }

    def save_checkpoint(self, folder: Path) -> None:
        """Their ``g_``/``do_`` files and ``config.json``, and what a bit-exact resume needs; ``trainer.json`` last."""
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        (folder / TRAINER_FILE).unlink(missing_ok=True)
        self.export(folder)
        discriminators_and_optimisers = {
            "mpd": _state(self.mpd),
            "msd": _state(self.msd),
            "optim_g": self.optim_g.state_dict(),
            "optim_d": self.optim_d.state_dict(),
            "steps": self.step - 1,  # theirs: the index of the last step taken
            "epoch": self.step // self.settings.lr_decay_every,
        }
        torch.save(discriminators_and_optimisers, str(folder / f"do_{self.step:08d}"))
        write_trainer_document(folder, self, name=NAME, format_version=FORMAT_VERSION)

    @classmethod
    def resume(cls, folder: Path, *, device: str = "cpu") -> UnitHifiGanTrainer:
        """The trainer a :meth:`save_checkpoint` folder holds, ready for its next step.

        Raises:
            CheckpointError: A missing, incomplete or foreign folder, or files that do not fit its settings.
        """
        import torch
        from safetensors import SafetensorError

        path = folder / TRAINER_FILE
        try:
            document = json.loads(path.read_text())
            if document.get("name") != NAME or document.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"name {document.get('name')!r}, format_version {document.get('format_version')!r}")
            settings = UnitHifiGanTrainSettings.model_validate(document["settings"])
            step = int(document["step"])
            trainer = cls(settings, int(document["clusters"]), device=device)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ValidationError) as error:
            raise CheckpointError(f"{path}: not a unit-hifigan trainer checkpoint ({one_line(error)})") from None
        try:
            generator_state = torch.load(str(folder / f"g_{step:08d}"), map_location="cpu", weights_only=True)
            others = torch.load(str(folder / f"do_{step:08d}"), map_location="cpu", weights_only=True)
            trainer.generator.load_state_dict(generator_state["generator"], strict=True)
            trainer.mpd.load_state_dict(others["mpd"], strict=True)
            trainer.msd.load_state_dict(others["msd"], strict=True)
            trainer.optim_g.load_state_dict(others["optim_g"])
            trainer.optim_d.load_state_dict(others["optim_d"])
            trainer.streams.load(folder, document["crops"])
        except (RuntimeError, SafetensorError, OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{folder}: a trainer checkpoint that does not fit ({one_line(error)})") from None
        trainer.step = step
        return trainer

    def export(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        """``g_<step>`` (``{"generator": state_dict}``, weight norm kept) and ``config.json`` (+ ``extra`` keys)."""
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"generator": _state(self.generator)}, str(folder / f"g_{self.step:08d}"))
        config = self.config | (extra or {})
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
