"""``unit-hifigan``: a unit HiFi-GAN vocoder that loads the checkpoints of speech-resynthesis and fairseq.

Those checkpoints are ``{"generator": state_dict}`` files (``g_XXXXXXXX``, ``model.pt``) beside a
``config.json`` with the HiFi-GAN shape (``upsample_rates``, ``upsample_kernel_sizes``,
``upsample_initial_channel``, ``resblock``, ``resblock_kernel_sizes``, ``resblock_dilation_sizes``,
``model_in_dim``) and the unit side (``num_embeddings``, ``embedding_dim``, ``dur_predictor_params``,
``multispkr``, ``num_speakers``, ``f0``). The network is the project's own code, built so that the parameter
names match (:mod:`im2sp_models.unit_hifigan_net`). Weight norm is removed
at load: ``weight_g``/``weight_v`` pairs (or torch's ``parametrizations.weight.original0/1``) are folded into
plain weights. Units at 50 Hz come out at 16 kHz: ``prod(upsample_rates)`` (320) samples per unit frame.
With a duration predictor, deduplicated units are first repeated by their predicted durations.
f0-conditioned checkpoints are refused (they need an f0 track the pipeline does not produce), as are
speaker-embedder ones. ``model_in_dim`` defaults to what the inputs need (embedding, plus speaker).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError
from im2sp_models.registry import ModelEntry, ModelSettings, Registry, validated_settings
from im2sp_models.unit_hifigan_net import fold_weight_norm, generator
from im2sp_models.unit_hifigan_train import UnitHifiGanTrainer
from storage.errors import ConfigError
from storage.hashing import sha256_files


class Vocoder(ModelEntry, Protocol):
    """Speech units → a waveform."""

    @property
    def sample_rate(self) -> int:
        """Output sampling rate."""

    @property
    def fingerprint(self) -> str:
        """Hash of name + config + weights."""

    def synthesize(self, units: np.ndarray, *, deduplicated: bool = True, speaker: int = 0) -> np.ndarray:
        """Waveform of one unit sequence: float32 in [-1, 1]."""


#: Every vocoder: built-ins by module, plugins under the ``im2sp.vocoders`` entry-point group.
VOCODERS = Registry[Vocoder](
    "vocoder", "im2sp.vocoders", {"unit-hifigan": "im2sp_models.vocoders", "unit-mel": "im2sp_models.unit_mel"}
)
#: Class decorator: register a vocoder under its ``name``.
register_vocoder = VOCODERS.register
#: Every name, built-in or from a plugin.
vocoder_names = VOCODERS.names


def training_settings(name: str, given: ModelSettings | dict[str, Any] | None = None) -> ModelSettings:
    """A trainable vocoder kind's training settings (its ``Trainer.Settings``) from a mapping of options.

    Raises:
        UnknownModelError: No vocoder has that name.
        ConfigError: The kind has no trainer, or an option it does not take (named in the message).
    """
    trainer = getattr(VOCODERS.entry(name), "Trainer", None)
    if trainer is None:
        raise ConfigError(f"vocoder {name!r} has no trainer")
    return validated_settings(trainer.Settings, given, f"vocoder {name}")


def load_vocoder(
    name: str, checkpoint: Path | None, *, device: str = "auto", settings: ModelSettings | None = None, **options: Any
) -> Vocoder:
    """Load a vocoder by registry name (``unit-hifigan``: a generator file or its folder).

    Raises:
        UnknownModelError: If no vocoder has that name.
        ConfigError: If an option is not one of the vocoder's settings.
        CheckpointError: If the checkpoint cannot be loaded.
    """
    return VOCODERS.load(name, checkpoint, device=device, settings=settings, **options)


class UnitHifiGanSettings(ModelSettings):
    """unit-hifigan's options: ``config``, where its ``config.json`` is when not beside the generator."""

    config: Path | None = None


@register_vocoder
class UnitHifiGanVocoder:
    """Deduplicated (with a duration predictor) or full-rate units → 16 kHz waveform."""

    name: ClassVar[str] = "unit-hifigan"
    Settings: ClassVar[type[ModelSettings]] = UnitHifiGanSettings
    needs_checkpoint: ClassVar[bool] = True
    #: What train-vocoder trains this kind with (speech-resynthesis's recipe).
    Trainer: ClassVar[type[UnitHifiGanTrainer]] = UnitHifiGanTrainer

    def __init__(self, network: Any, config: dict[str, Any], checksum: str, device: str) -> None:
        self.network = network
        self.config = config
        self.checksum = checksum
        self.device = device

    @property
    def hop(self) -> int:
        """Output samples per unit frame (the product of the upsampling rates)."""
        return int(np.prod(self.config["upsample_rates"]))

    @property
    def sample_rate(self) -> int:
        """Output sampling rate (``sampling_rate`` of the config, 16 kHz by default)."""
        return int(self.config.get("sampling_rate", 16_000))

    @property
    def fingerprint(self) -> str:
        """Hash of the name, config and weights."""
        return hashlib.sha256(f"{self.name}\n{self.checksum}".encode()).hexdigest()[:16]

    @property
    def has_duration_predictor(self) -> bool:
        """Whether deduplicated units can be given (durations are then predicted)."""
        return self.network.dur_predictor is not None

    def synthesize(self, units: np.ndarray, *, deduplicated: bool = True, speaker: int = 0) -> np.ndarray:
        """Waveform of one unit sequence: float32 in [-1, 1], ``frames × hop`` samples."""
        import torch

        codes = torch.from_numpy(np.asarray(units, dtype=np.int64).reshape(1, -1)).to(self.device)
        if codes.numel() == 0:
            return np.zeros(0, dtype=np.float32)
        if int(codes.min()) < 0 or int(codes.max()) >= int(self.config["num_embeddings"]):
            raise ValueError(f"units outside [0, {self.config['num_embeddings']})")
        with torch.inference_mode():
            audio = self.network(codes, speaker, predict_durations=deduplicated and self.has_duration_predictor)
        return np.asarray(audio.reshape(-1).float().cpu().numpy(), dtype=np.float32)

    @classmethod
    def load(
        cls, checkpoint: Path | None, options: UnitHifiGanSettings | None = None, *, device: str = "auto"
    ) -> UnitHifiGanVocoder:
        """Load ``{"generator": state_dict}`` (``torch.load(weights_only=True)``) and its ``config.json``.

        ``checkpoint`` is the generator file, or a folder holding it (``model.pt`` or the newest ``g_*``)
        and ``config.json``; ``options.config`` overrides where the config is.

        Raises:
            CheckpointError: Missing files, an f0 vocoder, or weights that do not fit the config.
        """
        import torch

        config = (options or UnitHifiGanSettings()).config
        if checkpoint is None:
            raise CheckpointError("unit-hifigan needs a generator file or its folder")
        folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
        if checkpoint.is_dir():
            candidates = sorted(folder.glob("g_*")) or sorted(folder.glob("*.pt"))
            if not candidates:
                raise CheckpointError(f"{folder}: no generator checkpoint (g_* or *.pt)")
            checkpoint = candidates[-1]
        config_path = config or folder / "config.json"
        if not checkpoint.is_file() or not config_path.is_file():
            raise CheckpointError(
                f"unit-hifigan needs a generator file and config.json; got {checkpoint}, {config_path}"
            )
        settings: dict[str, Any] = json.loads(config_path.read_text())
        if settings.get("f0"):
            raise CheckpointError(f"{config_path}: f0-conditioned vocoders are not supported (no f0 track)")
        if settings.get("embedder_params"):
            raise CheckpointError(f"{config_path}: speaker-embedder vocoders are not supported (speaker ids only)")
        try:
            document = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, ValueError) as error:
            raise CheckpointError(f"{checkpoint}: not a generator checkpoint ({error})") from error
        if not isinstance(document, dict) or "generator" not in document:
            raise CheckpointError(f"{checkpoint}: expected {{'generator': state_dict}}")
        network = generator(settings)
        state = fold_weight_norm(document["generator"])
        if network.dur_predictor is not None and not any(k.startswith("dur_predictor.") for k in state):
            network.dur_predictor = None  # speech-resynthesis trains it only with dur_prediction_weight
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{checkpoint}: weights do not fit {config_path} ({error})") from error
        resolved = resolve_device(device)
        checksum = sha256_files([config_path, checkpoint])  # the config's bytes, then the weights'
        return cls(network.to(resolved).eval(), settings, checksum, resolved)
