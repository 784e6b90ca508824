"""The ASR registry: what a recognizer offers, and the registry every recognizer joins.

A new recognizer is one module holding its class (``@register_asr``, ``name``, ``Settings``,
``needs_checkpoint``, ``load``) plus its line in :data:`BUILTINS`; one from another package registers under the
``im2sp.asr`` entry-point group instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from im2sp_models.registry import ModelEntry, ModelSettings, Registry

#: Built-in name → the module that registers it.
BUILTINS = {
    "wav2vec2-ctc": "im2sp_models.asr.wav2vec2_ctc",
    "faster-whisper": "im2sp_models.asr.whisper",
}


class SpeechRecognizer(ModelEntry, Protocol):
    """16 kHz mono float32 waveforms → transcripts."""

    @property
    def fingerprint(self) -> str:
        """Hash of name + weights."""

    def transcribe(self, waveforms: list[np.ndarray]) -> list[str]:
        """One transcript per waveform."""


RECOGNIZERS = Registry[SpeechRecognizer]("ASR", "im2sp.asr", BUILTINS)
#: Class decorator: register a recognizer under its ``name``.
register_asr = RECOGNIZERS.register
#: Every name, built-in or from a plugin.
asr_names = RECOGNIZERS.names


def load_asr(
    name: str, checkpoint: Path | None, *, device: str = "auto", settings: ModelSettings | None = None, **options: Any
) -> SpeechRecognizer:
    """Load a recognizer by registry name from a local folder.

    Raises:
        UnknownModelError: If no recognizer has that name.
        ConfigError: If an option is not one of the recognizer's settings.
        CheckpointError: If the folder cannot be loaded.
    """
    return RECOGNIZERS.load(name, checkpoint, device=device, settings=settings, **options)
