"""``mfcc``: HuBERT's first-iteration target, 13 MFCC + Δ + ΔΔ at 50 frames/s (librosa), no weights.

It runs in numpy, in float32: ``precision: bf16`` has no meaning here and is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
from pydantic import AfterValidator, Field

from im2sp_models.audio import CHUNK_SECONDS, SAMPLE_RATE, chunks
from im2sp_models.registry import ModelSettings, float32_only
from im2sp_models.speech_features.registry import register_extractor


@dataclass(frozen=True)
class MfccConfig:
    """Framing as HuBERT's conv stack (25 ms windows, 20 ms hop) so frame counts line up."""

    n_mfcc: int = 13
    n_mels: int = 23
    win_length: int = 400
    hop_length: int = 320
    delta_width: int = 9


class MfccSettings(ModelSettings):
    """mfcc's options: the :class:`MfccConfig` fields (part of the fingerprint), and ``precision`` (``fp32`` only)."""

    n_mfcc: int = Field(MfccConfig.n_mfcc, ge=1)
    n_mels: int = Field(MfccConfig.n_mels, ge=1)
    win_length: int = Field(MfccConfig.win_length, ge=1)
    hop_length: int = Field(MfccConfig.hop_length, ge=1)
    delta_width: int = Field(MfccConfig.delta_width, ge=3)
    precision: Annotated[str, AfterValidator(float32_only("mfcc"))] = "fp32"


@register_extractor
class MfccExtractor:
    """MFCC with first and second derivatives (39-d by default)."""

    name: ClassVar[str] = "mfcc"
    Settings: ClassVar[type[ModelSettings]] = MfccSettings
    needs_checkpoint: ClassVar[bool] = False

    def __init__(self, config: MfccConfig) -> None:
        self.config = config

    @property
    def dim(self) -> int:
        """Three times the MFCC count."""
        return 3 * self.config.n_mfcc

    @property
    def min_samples(self) -> int:
        """One window."""
        return self.config.win_length

    @property
    def fingerprint(self) -> str:
        """Hash of name and config."""
        document = json.dumps({"name": self.name, **asdict(self.config)}, sort_keys=True)
        return hashlib.sha256(document.encode()).hexdigest()[:16]

    def _one(self, waveform: np.ndarray) -> np.ndarray:
        import librosa

        c = self.config
        mfcc = librosa.feature.mfcc(
            y=waveform,
            sr=SAMPLE_RATE,
            n_mfcc=c.n_mfcc,
            n_fft=c.win_length,
            win_length=c.win_length,
            hop_length=c.hop_length,
            n_mels=c.n_mels,
            center=False,
        )
        # "nearest" edge padding, so utterances shorter than the Δ window still get derivatives.
        delta = librosa.feature.delta(mfcc, width=c.delta_width, order=1, mode="nearest")
        delta2 = librosa.feature.delta(mfcc, width=c.delta_width, order=2, mode="nearest")
        return np.concatenate([mfcc, delta, delta2]).T.astype(np.float32)

    def extract(self, waveforms: list[np.ndarray], chunk_seconds: float = CHUNK_SECONDS) -> list[np.ndarray]:
        """Per-utterance features, long ones in chunks of ``chunk_seconds`` joined; batching cannot change them."""
        pieces = [chunks(w, seconds=chunk_seconds, min_samples=self.min_samples) for w in waveforms]
        return [np.concatenate([self._one(piece) for piece in parts]) for parts in pieces]

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: MfccSettings | None = None, *, device: str = "auto"
    ) -> MfccExtractor:
        """Weight-free (``checkpoint`` is ignored): the settings give the MfccConfig fields."""
        options = (settings or MfccSettings()).model_dump(exclude={"precision"})
        return cls(MfccConfig(**options))
