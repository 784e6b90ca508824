"""The speech feature extractor registry: what an extractor offers, and the registry every extractor joins.

A new extractor is one module holding its class (``@register_extractor``, ``name``, ``Settings``,
``needs_checkpoint``, ``load``) plus its line in :data:`BUILTINS`; one from another package registers under the
``im2sp.speech_features`` entry-point group instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from im2sp_models.audio import CHUNK_SECONDS
from im2sp_models.registry import ModelEntry, ModelSettings, Registry

#: Built-in name → the module that registers it.
BUILTINS = {
    "mfcc": "im2sp_models.speech_features.mfcc",
    "hubert": "im2sp_models.speech_features.hubert",
}


class FeatureExtractor(ModelEntry, Protocol):
    """16 kHz mono float32 waveform → ``(T, D)`` float32 features at 50 frames/s."""

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


EXTRACTORS = Registry[FeatureExtractor]("speech feature extractor", "im2sp.speech_features", BUILTINS)
#: Class decorator: register an extractor under its ``name``.
register_extractor = EXTRACTORS.register
#: Every name, built-in or from a plugin.
extractor_names = EXTRACTORS.names


def load_extractor(
    name: str, checkpoint: Path | None, *, device: str = "auto", settings: ModelSettings | None = None, **options: Any
) -> FeatureExtractor:
    """Load an extractor by registry name (``checkpoint``: a local folder, or None for weight-free ones).

    Raises:
        UnknownModelError: If no extractor has that name.
        ConfigError: If an option is not one of the extractor's settings, or a value it refuses.
        CheckpointError: If the checkpoint cannot be loaded.
    """
    return EXTRACTORS.load(name, checkpoint, device=device, settings=settings, **options)
