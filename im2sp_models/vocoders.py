"""``unit-hifigan``: a unit HiFi-GAN vocoder that loads the checkpoints of speech-resynthesis and fairseq.

Those checkpoints are ``{"generator": state_dict}`` files (``g_XXXXXXXX``, ``model.pt``) beside a
``config.json`` with the HiFi-GAN shape (``upsample_rates``, ``upsample_kernel_sizes``,
``upsample_initial_channel``, ``resblock``, ``resblock_kernel_sizes``, ``resblock_dilation_sizes``,
``model_in_dim``) and the unit side (``num_embeddings``, ``embedding_dim``, ``dur_predictor_params``,
``multispkr``, ``num_speakers``, ``f0``). The network is this module's own code, built so that the parameter
names match (checked against speech-resynthesis ``models.py`` and its s2st example, and fairseq's
``text_to_speech/hifigan.py`` + ``codehifigan.py``):
``dict`` (unit embedding), ``conv_pre``, ``ups.N``, ``resblocks.N.convs1/convs2.M`` (or ``convs.M``),
``conv_post``, ``dur_predictor.{conv1.0, ln1, conv2.0, ln2, proj}`` and ``spkr``. Weight norm is removed
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
from im2sp_models.registry import ModelEntry, ModelSettings, Registry
from storage.hashing import sha256_files

LRELU_SLOPE = 0.1


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def _network(config: dict[str, Any]) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional

    class ResBlock1(nn.Module):
        def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
            super().__init__()
            self.convs1 = nn.ModuleList(
                nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_padding(kernel, d)) for d in dilations
            )
            self.convs2 = nn.ModuleList(
                nn.Conv1d(channels, channels, kernel, 1, dilation=1, padding=_padding(kernel)) for _ in dilations
            )

        def forward(self, x: Any) -> Any:
            for first, second in zip(self.convs1, self.convs2, strict=True):
                x = x + second(functional.leaky_relu(first(functional.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            return x

    class ResBlock2(nn.Module):
        def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
            super().__init__()
            self.convs = nn.ModuleList(
                nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_padding(kernel, d)) for d in dilations
            )

        def forward(self, x: Any) -> Any:
            for conv in self.convs:
                x = x + conv(functional.leaky_relu(x, LRELU_SLOPE))
            return x

    class DurationPredictor(nn.Module):
        def __init__(self, encoder_embed_dim: int, var_pred_hidden_dim: int, var_pred_kernel_size: int, **_: Any):
            super().__init__()
            padding = (var_pred_kernel_size - 1) // 2
            self.conv1 = nn.Sequential(
                nn.Conv1d(encoder_embed_dim, var_pred_hidden_dim, var_pred_kernel_size, padding=padding), nn.ReLU()
            )
            self.ln1 = nn.LayerNorm(var_pred_hidden_dim)
            self.conv2 = nn.Sequential(
                nn.Conv1d(var_pred_hidden_dim, var_pred_hidden_dim, var_pred_kernel_size, padding=1), nn.ReLU()
            )
            self.ln2 = nn.LayerNorm(var_pred_hidden_dim)
            self.proj = nn.Linear(var_pred_hidden_dim, 1)

        def forward(self, x: Any) -> Any:  # (B, T, C) → (B, T) log durations
            x = self.ln1(self.conv1(x.transpose(1, 2)).transpose(1, 2))
            x = self.ln2(self.conv2(x.transpose(1, 2)).transpose(1, 2))
            return self.proj(x).squeeze(2)

    class UnitHifiGan(nn.Module):
        def __init__(self, h: dict[str, Any]) -> None:
            super().__init__()
            initial = int(h["upsample_initial_channel"])
            self.num_kernels = len(h["resblock_kernel_sizes"])
            self.dict = nn.Embedding(int(h["num_embeddings"]), int(h["embedding_dim"]))
            inputs = int(h["embedding_dim"]) * (2 if h.get("multispkr") else 1)  # codes (+ speaker)
            self.conv_pre = nn.Conv1d(int(h.get("model_in_dim", inputs)), initial, 7, 1, padding=3)
            self.ups = nn.ModuleList(
                nn.ConvTranspose1d(initial // 2**i, initial // 2 ** (i + 1), k, u, padding=(k - u) // 2)
                for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"], strict=True))
            )
            block = ResBlock1 if str(h["resblock"]) == "1" else ResBlock2
            self.resblocks = nn.ModuleList(
                block(initial // 2 ** (i + 1), k, list(d))
                for i in range(len(self.ups))
                for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"], strict=True)
            )
            self.conv_post = nn.Conv1d(initial // 2 ** len(self.ups), 1, 7, 1, padding=3)
            speakers = int(h.get("num_speakers", 200))
            self.spkr = nn.Embedding(speakers, int(h["embedding_dim"])) if h.get("multispkr") else None
            params = h.get("dur_predictor_params")
            self.dur_predictor = DurationPredictor(**params) if params else None

        def forward(self, codes: Any, speaker: int = 0, predict_durations: bool = False) -> Any:
            x = self.dict(codes).transpose(1, 2)  # (1, C, T)
            if predict_durations:
                if self.dur_predictor is None:
                    raise ValueError("this vocoder has no duration predictor: give full-rate units")
                log_durations = self.dur_predictor(x.transpose(1, 2))
                durations = torch.clamp(torch.round(torch.exp(log_durations) - 1).long(), min=1)
                x = torch.repeat_interleave(x, durations.view(-1), dim=2)
            if self.spkr is not None:
                voice = self.spkr(torch.tensor([[speaker]], device=x.device)).transpose(1, 2)
                x = torch.cat([x, voice.expand(-1, -1, x.shape[-1])], dim=1)
            x = self.conv_pre(x)
            for index, up in enumerate(self.ups):
                x = up(functional.leaky_relu(x, LRELU_SLOPE))
                blocks = self.resblocks[index * self.num_kernels : (index + 1) * self.num_kernels]
                x = sum(block(x) for block in blocks) / self.num_kernels
            return torch.tanh(self.conv_post(functional.leaky_relu(x)))

    return UnitHifiGan(config)


#: How weight-norm parts are saved: torch.nn.utils.weight_norm, and the newer parametrization.
_WEIGHT_NORM_SUFFIXES = (
    (".weight_g", ".weight_v"),
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
)


def fold_weight_norm(state: dict[str, Any]) -> dict[str, Any]:
    """Replace each weight-norm pair by the weight it stands for: ``g · v / ‖v‖`` (norm over all but dim 0)."""
    folded: dict[str, Any] = {}
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        for g_suffix, v_suffix in (
            (".weight_g", ".weight_v"),
            (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
        ):
            if key.endswith(g_suffix):
                pairs.setdefault(key.removesuffix(g_suffix), {})["g"] = value
                break
            if key.endswith(v_suffix):
                pairs.setdefault(key.removesuffix(v_suffix), {})["v"] = value
                break
        else:
            folded[key] = value
    for prefix, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            raise CheckpointError(f"weight norm of {prefix} is missing its {'g' if 'g' not in pair else 'v'} part")
        v = pair["v"]
        norm = v.norm(2, dim=tuple(range(1, v.dim())), keepdim=True)
        folded[f"{prefix}.weight"] = pair["g"] * v / norm
    return folded


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
        network = _network(settings)
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
