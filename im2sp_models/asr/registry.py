"""The ASR registry: kebab-case names, one class per entry, each loading a local folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from im2sp_models.registry import Registry

_ENTRY_MODULES = {
    "wav2vec2-ctc": "im2sp_models.asr.wav2vec2_ctc",
    "faster-whisper": "im2sp_models.asr.whisper",
}


class SpeechRecognizer(Protocol):
    """16 kHz mono float32 waveforms → transcripts."""

    name: ClassVar[str]

    @property
    def fingerprint(self) -> str:
        """Hash of name + weights."""

    def transcribe(self, waveforms: list[np.ndarray]) -> list[str]:
        """One transcript per waveform."""


_REGISTRY = Registry("ASR", _ENTRY_MODULES)
#: Class decorator: register a class's ``load`` classmethod under a kebab-case name.
register_asr = _REGISTRY.register


def asr_names() -> list[str]:
    """Every registered name."""
    return _REGISTRY.names()


def load_asr(name: str, checkpoint: Path, *, device: str = "auto", **options: Any) -> SpeechRecognizer:
    """Load a recognizer by registry name from a local folder.

    Raises:
        UnknownModelError: If no recognizer has that name.
        CheckpointError: If the folder cannot be loaded.
    """
    loaded: SpeechRecognizer = _REGISTRY.load(name, checkpoint, device=device, **options)
    return loaded
