"""The speech feature extractor registry: kebab-case names saved in every store, one class per entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from im2sp_models.audio import CHUNK_SECONDS
from im2sp_models.registry import Registry

_ENTRY_MODULES = {
    "mfcc": "im2sp_models.speech_features.mfcc",
    "hubert": "im2sp_models.speech_features.hubert",
}


class FeatureExtractor(Protocol):
    """16 kHz mono float32 waveform → ``(T, D)`` float32 features at 50 frames/s."""

    name: ClassVar[str]

    @property
    def dim(self) -> int:
        """Feature dimension D."""

    @property
    def min_samples(self) -> int:
        """Shortest waveform (samples) that yields one frame: the receptive field."""

    @property
    def fingerprint(self) -> str:
        """Hash of name + config + weights: names the stores it produces."""

    def extract(self, waveforms: list[np.ndarray], chunk_seconds: float = CHUNK_SECONDS) -> list[np.ndarray]:
        """Features of each whole waveform, long ones computed in ``chunk_seconds`` chunks and joined.

        Batching never changes a result.
        """


_REGISTRY = Registry("speech feature extractor", _ENTRY_MODULES)
#: Class decorator: register a class's ``load`` classmethod under a kebab-case name.
register_extractor = _REGISTRY.register


def extractor_names() -> list[str]:
    """Every registered name."""
    return _REGISTRY.names()


def load_extractor(name: str, checkpoint: Path | None, *, device: str = "auto", **options: Any) -> FeatureExtractor:
    """Load an extractor by registry name (``checkpoint``: a local folder, or None for weight-free ones).

    Raises:
        UnknownModelError: If no extractor has that name.
        CheckpointError: If the checkpoint cannot be loaded.
    """
    loaded: FeatureExtractor = _REGISTRY.load(name, checkpoint, device=device, **options)
    return loaded
