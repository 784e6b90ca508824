"""Log-mel spectrograms of speech, and one picture that shows several side by side.

evaluate-im2sp shows, for one test image, the recorded reference utterance, its units resynthesized and the
generated units spoken. All three are computed here from their waveforms with the same 80-band mel filterbank
(16 kHz, 1024-point FFT, hop 256, as HiFi-GAN's), so the panels compare like with like whatever vocoder spoke.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

N_MELS = 80
N_FFT = 1024
HOP = 256
#: Floor of the magnitude before the log (HiFi-GAN's ``clip_val``): silence is log(1e-5), not minus infinity.
FLOOR = 1e-5


def _mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-style triangular mel filters ``(n_mels, n_fft // 2 + 1)`` (HTK mel scale, unnormalised)."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        return np.asarray(2595.0 * np.log10(1.0 + hz / 700.0))

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return np.asarray(700.0 * (10 ** (mel / 2595.0) - 1.0))

    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(to_mel(np.array(0.0)), to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins[None]) / np.maximum(upper - centre, 1e-9)
    return np.asarray(np.clip(np.minimum(rising, falling), 0.0, None), dtype=np.float64)


def log_mel(waveform: np.ndarray, sample_rate: int = 16_000, n_mels: int = N_MELS) -> np.ndarray:
    """The ``(frames, n_mels)`` natural-log mel magnitudes of a mono waveform (one frame for very short speech)."""
    audio = np.asarray(waveform, dtype=np.float32).reshape(-1)
    audio = np.pad(audio, (N_FFT // 2, N_FFT // 2 + max(0, N_FFT - audio.size)))
    frames = 1 + (audio.size - N_FFT) // HOP
    index = np.arange(N_FFT)[None] + HOP * np.arange(frames)[:, None]
    spectrum = np.abs(np.fft.rfft(audio[index] * np.hanning(N_FFT)[None], axis=1))
    mel = spectrum @ _mel_filters(sample_rate, N_FFT, n_mels).T
    return np.asarray(np.log(np.maximum(mel, FLOOR)), dtype=np.float32)


def spectrogram_png(panels: Sequence[tuple[str, np.ndarray]], title: str) -> bytes:
    """One PNG with each ``(label, (frames, mels) log-mel)`` panel side by side, on a shared colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.concatenate([mel.reshape(-1) for _, mel in panels]) if panels else np.zeros(1)
    low, high = float(values.min()), float(values.max())
    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(4 * max(1, len(panels)), 3), dpi=80, squeeze=False)
    for axis, (label, mel) in zip(axes[0], panels, strict=False):
        axis.imshow(mel.T, origin="lower", aspect="auto", vmin=low, vmax=high, cmap="magma")
        axis.set_title(label, fontsize=9)
        axis.set_xlabel(f"frames ({HOP} samples)")
    axes[0][0].set_ylabel("mel band")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
