"""The networks of ``unit-hifigan``: the unit HiFi-GAN generator, its discriminators, losses and mel analysis.

The generator's parameter names and order are speech-resynthesis's (``models.py`` ``Generator`` +
``CodeGenerator``, the s2st example's ``DurationCodeGenerator``) and fairseq's ``codehifigan.py``:
``conv_pre``, ``ups.N``, ``resblocks.N.convs1/convs2.M`` (or ``convs.M``), ``conv_post``, then ``dict`` (unit
embedding), ``spkr`` and ``dur_predictor.{conv1.0, ln1, conv2.0, ln2, proj}``. For training it is built with
weight norm (``weight_g``/``weight_v``, the keys their checkpoints hold); for synthesis the weights are folded.

The discriminators are HiFi-GAN's multi-period (periods 2, 3, 5, 7, 11) and multi-scale (three scales, the first
with spectral norm) ones, with the recipe's channel widths divided by ``divisor`` (1: the recipe's). The mel
analysis of the loss is HiFi-GAN's: reflect padding of ``(n_fft − hop) / 2``, an uncentred STFT with a Hann
window, magnitude ``sqrt(power + 1e-9)``, Slaney-scale, area-normalised mel filters, ``log(max(x, 1e-5))``.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np

from im2sp_models.errors import CheckpointError

LRELU_SLOPE = 0.1
#: Log floor of the mel loss's magnitudes (HiFi-GAN's ``clip_val``).
MEL_FLOOR = 1e-5
#: HiFi-GAN's discriminator periods.
PERIODS = (2, 3, 5, 7, 11)


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def _weight_norm(module: Any) -> Any:
    """``torch.nn.utils.weight_norm``: its ``weight_g``/``weight_v`` keys are the checkpoints' own."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(module)


def generator(config: dict[str, Any], *, training: bool = False) -> Any:
    """The unit HiFi-GAN of a speech-resynthesis ``config.json``; ``training``: with weight norm and its init."""
    import torch
    from torch import nn
    from torch.nn import functional

    def conv(module: Any, *, init: bool = True) -> Any:
        if not training:
            return module
        if init:  # HiFi-GAN's N(0, 0.01), given to the direction so that weight norm keeps it
            nn.init.normal_(module.weight, 0.0, 0.01)
        return _weight_norm(module)

    class ResBlock1(nn.Module):
        def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
            super().__init__()
            self.convs1 = nn.ModuleList(
                conv(nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_padding(kernel, d)))
                for d in dilations
            )
            self.convs2 = nn.ModuleList(
                conv(nn.Conv1d(channels, channels, kernel, 1, dilation=1, padding=_padding(kernel))) for _ in dilations
            )

        def forward(self, x: Any) -> Any:
            for first, second in zip(self.convs1, self.convs2, strict=True):
                x = x + second(functional.leaky_relu(first(functional.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            return x

    class ResBlock2(nn.Module):
        def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
            super().__init__()
            self.convs = nn.ModuleList(
                conv(nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_padding(kernel, d)))
                for d in dilations
            )

        def forward(self, x: Any) -> Any:
            for layer in self.convs:
                x = x + layer(functional.leaky_relu(x, LRELU_SLOPE))
            return x

    class DurationPredictor(nn.Module):
        def __init__(
            self,
            encoder_embed_dim: int,
            var_pred_hidden_dim: int,
            var_pred_kernel_size: int,
            var_pred_dropout: float = 0.0,
            **_: Any,
        ) -> None:
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
            self.dropout = float(var_pred_dropout)

        def forward(self, x: Any) -> Any:  # (B, T, C) → (B, T) log(1 + duration)
            x = self.ln1(self.conv1(x.transpose(1, 2)).transpose(1, 2))
            x = functional.dropout(x, self.dropout, self.training)
            x = self.ln2(self.conv2(x.transpose(1, 2)).transpose(1, 2))
            x = functional.dropout(x, self.dropout, self.training)
            return self.proj(x).squeeze(2)

    class UnitHifiGan(nn.Module):
        def __init__(self, h: dict[str, Any]) -> None:
            super().__init__()
            initial = int(h["upsample_initial_channel"])
            self.num_kernels = len(h["resblock_kernel_sizes"])
            inputs = int(h["embedding_dim"]) * (2 if h.get("multispkr") else 1)  # codes (+ speaker)
            self.conv_pre = conv(nn.Conv1d(int(h.get("model_in_dim", inputs)), initial, 7, 1, padding=3), init=False)
            self.ups = nn.ModuleList(
                conv(nn.ConvTranspose1d(initial // 2**i, initial // 2 ** (i + 1), k, u, padding=(k - u) // 2))
                for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"], strict=True))
            )
            block = ResBlock1 if str(h["resblock"]) == "1" else ResBlock2
            self.resblocks = nn.ModuleList(
                block(initial // 2 ** (i + 1), k, list(d))
                for i in range(len(self.ups))
                for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"], strict=True)
            )
            self.conv_post = conv(nn.Conv1d(initial // 2 ** len(self.ups), 1, 7, 1, padding=3))
            self.dict = nn.Embedding(int(h["num_embeddings"]), int(h["embedding_dim"]))
            speakers = int(h.get("num_speakers", 200))
            self.spkr = nn.Embedding(speakers, int(h["embedding_dim"])) if h.get("multispkr") else None
            params = h.get("dur_predictor_params")
            self.dur_predictor = DurationPredictor(**params) if params else None

        def body(self, x: Any) -> Any:
            """``(B, model_in_dim, T)`` features at the unit rate → ``(B, 1, T · hop)`` waveform."""
            x = self.conv_pre(x)
            for index, up in enumerate(self.ups):
                x = up(functional.leaky_relu(x, LRELU_SLOPE))
                blocks = self.resblocks[index * self.num_kernels : (index + 1) * self.num_kernels]
                x = sum(block(x) for block in blocks) / self.num_kernels
            return torch.tanh(self.conv_post(functional.leaky_relu(x)))

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
            return self.body(x)

    return UnitHifiGan(config)


def fold_weight_norm(state: dict[str, Any]) -> dict[str, Any]:
    """Replace each weight-norm pair by the weight it stands for: ``g · v / ‖v‖`` (norm over all but dim 0).

    Both layouts are read: ``torch.nn.utils.weight_norm``'s ``weight_g``/``weight_v`` and the parametrization's
    ``parametrizations.weight.original0/1``.
    """
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


def discriminators(divisor: int = 1) -> tuple[Any, Any]:
    """HiFi-GAN's multi-period and multi-scale discriminators, every channel width divided by ``divisor``."""
    import torch
    from torch import nn
    from torch.nn import functional

    def width(channels: int) -> int:
        return max(1, channels // divisor)

    def spectral(module: Any) -> Any:
        return torch.nn.utils.spectral_norm(module)

    class PeriodDiscriminator(nn.Module):
        def __init__(self, period: int) -> None:
            super().__init__()
            self.period = period
            sizes = [1, width(32), width(128), width(512), width(1024)]
            self.convs = nn.ModuleList(
                [
                    *(
                        _weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)))
                        for a, b in itertools.pairwise(sizes)
                    ),
                    _weight_norm(nn.Conv2d(sizes[-1], width(1024), (5, 1), 1, padding=(2, 0))),
                ]
            )
            self.conv_post = _weight_norm(nn.Conv2d(width(1024), 1, (3, 1), 1, padding=(1, 0)))

        def forward(self, x: Any) -> tuple[Any, list[Any]]:
            batch, channels, length = x.shape
            if length % self.period:
                x = functional.pad(x, (0, self.period - length % self.period), "reflect")
            x = x.view(batch, channels, -1, self.period)
            return _layers(self.convs, self.conv_post, x)

    class ScaleDiscriminator(nn.Module):
        def __init__(self, spectral_norm: bool) -> None:
            super().__init__()
            norm = spectral if spectral_norm else _weight_norm
            layers = [  # (in, out, kernel, stride, groups, padding)
                (1, 128, 15, 1, 1, 7),
                (128, 128, 41, 2, 4, 20),
                (128, 256, 41, 2, 16, 20),
                (256, 512, 41, 4, 16, 20),
                (512, 1024, 41, 4, 16, 20),
                (1024, 1024, 41, 1, 16, 20),
                (1024, 1024, 5, 1, 1, 2),
            ]
            self.convs = nn.ModuleList(
                norm(nn.Conv1d(width(a), width(b), k, s, groups=min(g, width(a), width(b)), padding=p))
                for a, b, k, s, g, p in layers
            )
            self.conv_post = norm(nn.Conv1d(width(1024), 1, 3, 1, padding=1))

        def forward(self, x: Any) -> tuple[Any, list[Any]]:
            return _layers(self.convs, self.conv_post, x)

    class MultiPeriod(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.discriminators = nn.ModuleList(PeriodDiscriminator(p) for p in PERIODS)

        def forward(self, real: Any, fake: Any) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
            return _both(self.discriminators, [(real, fake)] * len(self.discriminators))

    class MultiScale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.discriminators = nn.ModuleList(ScaleDiscriminator(i == 0) for i in range(3))
            self.meanpools = nn.ModuleList(nn.AvgPool1d(4, 2, padding=2) for _ in range(2))

        def forward(self, real: Any, fake: Any) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
            inputs = [(real, fake)]
            for pool in self.meanpools:
                real, fake = pool(real), pool(fake)
                inputs.append((real, fake))
            return _both(self.discriminators, inputs)

    return MultiPeriod(), MultiScale()


def _layers(convs: Any, post: Any, x: Any) -> tuple[Any, list[Any]]:
    """A discriminator's layers (leaky ReLU after each but the last): its flattened scores and every feature map."""
    import torch
    from torch.nn import functional

    features = []
    for layer in convs:
        x = functional.leaky_relu(layer(x), LRELU_SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return torch.flatten(x, 1, -1), features


def _both(discriminators: Any, inputs: list[tuple[Any, Any]]) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """Each discriminator on its (real, generated) pair: scores and feature maps of both."""
    real_scores, fake_scores, real_features, fake_features = [], [], [], []
    for discriminator, (real, fake) in zip(discriminators, inputs, strict=True):
        score, features = discriminator(real)
        real_scores.append(score)
        real_features.append(features)
        score, features = discriminator(fake)
        fake_scores.append(score)
        fake_features.append(features)
    return real_scores, fake_scores, real_features, fake_features


def feature_matching_loss(real: list[list[Any]], fake: list[list[Any]]) -> Any:
    """Twice the sum, over every discriminator layer, of the mean absolute feature difference."""
    total: Any = 0.0
    for real_maps, fake_maps in zip(real, fake, strict=True):
        for r, f in zip(real_maps, fake_maps, strict=True):
            total = total + (r.detach() - f).abs().mean()
    return 2 * total


def discriminator_loss(real: list[Any], fake: list[Any]) -> Any:
    """Least squares: real scores towards 1, generated ones towards 0, summed over discriminators."""
    total: Any = 0.0
    for r, f in zip(real, fake, strict=True):
        total = total + ((1 - r) ** 2).mean() + (f**2).mean()
    return total


def adversarial_loss(fake: list[Any]) -> Any:
    """Least squares for the generator: its scores towards 1, summed over discriminators."""
    total: Any = 0.0
    for f in fake:
        total = total + ((1 - f) ** 2).mean()
    return total


def slaney_mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangles on the Slaney mel scale, each of unit area (librosa's default)."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        linear = hz / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / (np.log(6.4) / 27.0)
        return np.asarray(np.where(hz >= 1000.0, log_part, linear))

    def to_hz(mel: np.ndarray) -> np.ndarray:
        linear = mel * (200.0 / 3)
        log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
        return np.asarray(np.where(mel >= 15.0, log_part, linear))

    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(to_mel(np.array(float(fmin))), to_mel(np.array(float(fmax))), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return np.asarray(weights, dtype=np.float32)


def mel_spectrogram(wave: Any, filters: Any, n_fft: int, hop: int, win: int) -> Any:
    """HiFi-GAN's log-mel of ``(B, samples)`` waveforms: ``(B, n_mels, frames)``, float32."""
    import torch
    from torch.nn import functional

    pad = (n_fft - hop) // 2
    padded = functional.pad(wave.float().unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(win, device=wave.device)
    spectrum = torch.stft(padded, n_fft, hop, win, window, center=False, return_complex=True)
    magnitude = torch.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-9)
    return torch.log(torch.clamp(torch.matmul(filters, magnitude), min=MEL_FLOOR))
