"""``unit-mel``: a trainable unit vocoder, speech units → learned log-mel → Griffin-Lim waveform at 16 kHz.

:class:`UnitMelTrainer` learns the network of :mod:`im2sp_models.unit_mel_net` from (full-rate units, log-mel
of the recording) pairs: L1 on random segments of ``segment_frames`` for the mel network, MSE on
``log(1 + run length)`` of the deduplicated units for the duration predictor beside it, both in one AdamW
step. It saves what resuming bit-exactly needs (weights, optimizer moments, step, the torch and numpy random
states: safetensors + JSON, nothing pickled) and exports the folder :class:`UnitMelVocoder` loads. The
trainer keeps its own random streams (its dropout and crops never see, nor move, the process's).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError, one_line
from im2sp_models.registry import ModelSettings
from im2sp_models.trainer_streams import TRAINER_FILE, RandomStreams, write_trainer_document
from im2sp_models.unit_mel_net import (
    CONFIG_FILE,
    FORMAT_VERSION,
    NAME,
    WEIGHTS_FILE,
    UnitMelSettings,
    build_network,
    check_units,
    expand,
    export_folder,
    griffin_lim,
    log_mel,
    predict_log_mel,
    read_config,
    run_lengths,
)
from im2sp_models.vocoders import register_vocoder
from storage.hashing import sha256_files

__all__ = ["UnitMelSettings", "UnitMelTrainer", "UnitMelVocoder", "griffin_lim", "log_mel", "run_lengths"]

OPTIMIZER_FILE = "optimizer.safetensors"


class UnitMelTrainer:
    """Trains a unit-mel network for ``clusters`` units, seeded by ``settings.seed``.

    Args:
        settings: The model's shape and its training.
        clusters: The speech codebook's K (units are ``0 … clusters − 1``).
        device: ``cpu``, ``cuda`` or ``auto`` (bit-exact resumption is promised on the CPU).
    """

    Settings: ClassVar[type[ModelSettings]] = UnitMelSettings
    #: What train-vocoder computes from each recording: its ``(frames, n_mels)`` log-mel at the unit rate.
    target = staticmethod(log_mel)

    def __init__(self, settings: UnitMelSettings, clusters: int, *, device: str = "cpu") -> None:
        import torch

        if clusters < 1:
            raise ValueError(f"clusters must be ≥ 1, got {clusters}")
        self.settings, self.clusters = settings, clusters
        self.device = resolve_device(device)
        self.step = 0
        self.streams = RandomStreams(self.device, settings.seed)
        with self.streams.seeded(settings.seed):
            self.network = build_network(settings, clusters).to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=settings.lr, betas=(0.9, 0.98), weight_decay=settings.weight_decay
        )

    def learning_rate(self, step: int) -> float:
        """The rate of optimizer step ``step``: linear warm-up, then constant or a cosine decay."""
        s = self.settings
        if step < s.warmup_steps:
            return s.lr * (step + 1) / s.warmup_steps
        if s.decay_steps == 0:
            return s.lr
        progress = min(1.0, (step - s.warmup_steps) / s.decay_steps)
        return s.lr * (s.lr_floor + (1 - s.lr_floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    def _check(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        if not batch:
            raise ValueError("train_step needs at least one (units, log-mel) pair")
        pairs = []
        for index, (units, mel) in enumerate(batch):
            codes, values = check_units(units, self.clusters), np.asarray(mel, dtype=np.float32)
            if values.shape != (len(codes), self.settings.n_mels) or len(codes) == 0:
                raise ValueError(
                    f"pair {index}: {len(codes)} units need a ({len(codes)}, {self.settings.n_mels}) log-mel, "
                    f"got {values.shape}"
                )
            pairs.append((codes, values))
        return pairs

    def _segments(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Random crops of at most ``segment_frames`` (whole utterances when shorter), padded, and their mask."""
        size = min(self.settings.segment_frames, max(len(units) for units, _ in pairs))
        units = np.zeros((len(pairs), size), dtype=np.int64)
        mels = np.zeros((len(pairs), size, self.settings.n_mels), dtype=np.float32)
        mask = np.zeros((len(pairs), size), dtype=np.float32)
        for row, (codes, values) in enumerate(pairs):
            start = int(self.streams.crops.integers(0, len(codes) - size + 1)) if len(codes) > size else 0
            length = min(size, len(codes))
            units[row, :length], mels[row, :length] = codes[start : start + length], values[start : start + length]
            mask[row, :length] = 1
        if self.settings.unit_noise > 0:
            noisy = self.streams.crops.random(units.shape) < self.settings.unit_noise
            units[noisy] = self.streams.crops.integers(0, self.clusters, int(noisy.sum()))
        return units, mels, mask

    @staticmethod
    def _durations(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Deduplicated units of whole utterances, ``log(1 + run length)`` of each, and their mask."""
        runs = [run_lengths(codes) for codes, _ in pairs]
        size = max(len(values) for values, _ in runs)
        units = np.zeros((len(runs), size), dtype=np.int64)
        targets = np.zeros((len(runs), size), dtype=np.float32)
        mask = np.zeros((len(runs), size), dtype=np.float32)
        for row, (values, lengths) in enumerate(runs):
            units[row, : len(values)], targets[row, : len(values)] = values, np.log1p(lengths)
            mask[row, : len(values)] = 1
        return units, targets, mask

    def train_step(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """One optimizer step on (full-rate units ``(T,)``, log-mel ``(T, n_mels)``) pairs.

        Returns:
            ``loss`` (``mel_l1 + duration_weight · duration_loss``), ``mel_l1``, ``duration_loss``,
            ``grad_norm`` (before clipping) and ``lr``.

        Raises:
            ValueError: An empty batch, units out of range, or a log-mel of another shape.
        """
        import torch

        pairs = self._check(batch)
        tensors = [torch.from_numpy(a).to(self.device) for a in (*self._segments(pairs), *self._durations(pairs))]
        units, mels, mask, dedup, targets, dedup_mask = tensors
        lr = self.learning_rate(self.step)
        with self.streams.own():
            self.network.train()
            error = (self.network(units) - mels).abs().mean(dim=2)
            mel_l1 = (error * mask).sum() / mask.sum()
            squared = (self.network.duration(dedup) - targets) ** 2
            duration_loss = (squared * dedup_mask).sum() / dedup_mask.sum()
            loss = mel_l1 + self.settings.duration_weight * duration_loss
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.settings.grad_clip)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
        self.step += 1
        return {
            "loss": float(loss.detach()),
            "mel_l1": float(mel_l1.detach()),
            "duration_loss": float(duration_loss.detach()),
            "grad_norm": float(grad_norm),
            "lr": lr,
        }

    def log_mel_of(self, units: np.ndarray) -> np.ndarray:
        """The ``(T, n_mels)`` log-mel the current network predicts for full-rate units (no dropout)."""
        self.network.eval()
        return predict_log_mel(self.network, check_units(units, self.clusters), self.device)

    def save_checkpoint(self, folder: Path) -> None:
        """Write what :meth:`resume` needs; ``trainer.json`` last, so a folder without it is incomplete."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        (folder / TRAINER_FILE).unlink(missing_ok=True)
        save_file(_cpu(self.network.state_dict()), str(folder / WEIGHTS_FILE))
        moments = {f"{i}.{k}": v for i, state in self.optimizer.state_dict()["state"].items() for k, v in state.items()}
        save_file(_cpu(moments), str(folder / OPTIMIZER_FILE))
        write_trainer_document(folder, self, name=NAME, format_version=FORMAT_VERSION)

    @classmethod
    def resume(cls, folder: Path, *, device: str = "cpu") -> UnitMelTrainer:
        """The trainer a :meth:`save_checkpoint` folder holds, ready for its next step.

        Raises:
            CheckpointError: A missing, incomplete or foreign folder, or files that do not fit its settings.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        document = _trainer_document(folder)
        trainer = cls(UnitMelSettings.model_validate(document["settings"]), int(document["clusters"]), device=device)
        try:
            trainer.network.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
            state: dict[int, dict[str, Any]] = {}
            for key, value in load_file(str(folder / OPTIMIZER_FILE)).items():
                index, name = key.split(".", 1)
                state.setdefault(int(index), {})[name] = value
            groups = trainer.optimizer.state_dict()["param_groups"]
            trainer.optimizer.load_state_dict({"state": state, "param_groups": groups})
            trainer.streams.load(folder, document["crops"])
        except (RuntimeError, SafetensorError, OSError, ValueError, KeyError) as error:
            raise CheckpointError(f"{folder}: a trainer checkpoint that does not fit ({one_line(error)})") from None
        trainer.step = int(document["step"])
        return trainer

    def export(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        """Write the vocoder folder :meth:`UnitMelVocoder.load` reads, ``extra`` keys (``codebook``) in its config."""
        export_folder(folder, self.network, self.settings, self.clusters, extra)


def _cpu(tensors: dict[str, Any]) -> dict[str, Any]:
    return {key: value.detach().cpu().contiguous() for key, value in tensors.items()}


def _trainer_document(folder: Path) -> dict[str, Any]:
    path = folder / TRAINER_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder}: no unit-mel trainer checkpoint ({TRAINER_FILE} missing)")
    try:
        document = json.loads(path.read_text())
        if document.get("name") != NAME or document.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"name {document.get('name')!r}, format_version {document.get('format_version')!r}")
        UnitMelSettings.model_validate(document["settings"])
        int(document["clusters"]), int(document["step"]), dict(document["crops"])
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as error:
        raise CheckpointError(f"{path}: not a unit-mel trainer checkpoint ({one_line(error)})") from None
    return dict(document)


@register_vocoder
class UnitMelVocoder:
    """Speech units → learned log-mel → Griffin-Lim waveform at 16 kHz (``hop`` samples per unit frame)."""

    name: ClassVar[str] = NAME
    Settings: ClassVar[type[ModelSettings]] = UnitMelSettings
    needs_checkpoint: ClassVar[bool] = True
    #: What train-vocoder trains this kind with.
    Trainer: ClassVar[type[UnitMelTrainer]] = UnitMelTrainer

    def __init__(
        self, network: Any, settings: UnitMelSettings, config: dict[str, Any], checksum: str, device: str
    ) -> None:
        self.network = network
        self.settings = settings
        self.config = config
        self.checksum = checksum
        self.device = device

    @property
    def sample_rate(self) -> int:
        """Output sampling rate (16 kHz by default)."""
        return self.settings.sample_rate

    @property
    def hop(self) -> int:
        """Output samples per unit frame."""
        return self.settings.hop

    @property
    def clusters(self) -> int:
        """How many distinct units it takes (the speech codebook's K)."""
        return int(self.config["clusters"])

    @property
    def codebook(self) -> str | None:
        """The speech codebook it was trained on, when its export recorded one."""
        value = self.config.get("codebook")
        return None if value is None else str(value)

    @property
    def fingerprint(self) -> str:
        """Hash of the name, the config and weights, and the Griffin-Lim iterations it synthesises with."""
        document = f"{self.name}\n{self.checksum}\n{self.settings.griffin_lim_iters}"
        return hashlib.sha256(document.encode()).hexdigest()[:16]

    def log_mel_of(self, units: np.ndarray, *, deduplicated: bool = True) -> np.ndarray:
        """The ``(T, n_mels)`` log-mel the vocoder speaks for ``units`` (deduplicated ones expanded first)."""
        codes = check_units(units, self.clusters)
        if codes.size == 0:
            return np.zeros((0, self.settings.n_mels), dtype=np.float32)
        if deduplicated:
            codes = expand(self.network, codes, self.device)
        return predict_log_mel(self.network, codes, self.device)

    def synthesize(self, units: np.ndarray, *, deduplicated: bool = True, speaker: int = 0) -> np.ndarray:
        """Float32 mono waveform in [-1, 1], ``frames × hop`` samples (single speaker: ``speaker`` is ignored)."""
        return griffin_lim(self.log_mel_of(units, deduplicated=deduplicated), self.settings)

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: UnitMelSettings | None = None, /, *, device: str = "auto"
    ) -> UnitMelVocoder:
        """Load a folder written by :meth:`UnitMelTrainer.export`.

        Args:
            checkpoint: The folder (``config.json`` + ``model.safetensors``).
            settings: Only ``griffin_lim_iters`` may be set to another value than the folder's (the rest is
                what the weights were trained with).
            device: ``auto``, ``cpu`` or ``cuda``.

        Raises:
            CheckpointError: A missing or incomplete folder, another kind's or format's config, weights that
                do not fit it, or settings that contradict it.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        config, trained = read_config(checkpoint)
        folder = Path(str(checkpoint))
        overrides = {key: getattr(settings, key) for key in settings.model_fields_set} if settings else {}
        iterations = overrides.pop("griffin_lim_iters", trained.griffin_lim_iters)
        differing = sorted(key for key, value in overrides.items() if getattr(trained, key) != value)
        if differing:
            raise CheckpointError(
                f"{folder}: trained with other {', '.join(differing)} (only griffin_lim_iters may be changed)"
            )
        network = build_network(trained, int(config["clusters"]))
        try:
            network.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
        except (RuntimeError, SafetensorError, OSError) as error:
            raise CheckpointError(
                f"{folder / WEIGHTS_FILE}: weights do not fit its config ({one_line(error)})"
            ) from None
        resolved = resolve_device(device)
        checksum = sha256_files([folder / CONFIG_FILE, folder / WEIGHTS_FILE])
        effective = trained.model_copy(update={"griffin_lim_iters": iterations})
        return cls(network.to(resolved).eval(), effective, config, checksum, resolved)
