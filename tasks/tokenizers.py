"""Loading an image tokenizer once per process from a small, serialisable reference."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from im2sp_models.image_tokenizers import ImageTokenizer, load_tokenizer


@dataclass(frozen=True)
class TokenizerRef:
    """What a task needs to load a tokenizer: registry name, local checkpoint, options, device."""

    name: str
    checkpoint: str
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[str, str, str, tuple[tuple[str, Any], ...]]:
        """Hashable identity for the per-process cache."""
        return (self.name, self.checkpoint, self.device, tuple(sorted(self.options.items())))


_LOADED: dict[tuple[str, str, str, tuple[tuple[str, Any], ...]], ImageTokenizer] = {}
_LOCK = threading.Lock()


def tokenizer_for(ref: TokenizerRef) -> ImageTokenizer:
    """Return the tokenizer of a reference, loading it at most once per process (tasks share it)."""
    with _LOCK:
        if ref.key() not in _LOADED:
            _LOADED[ref.key()] = load_tokenizer(ref.name, Path(ref.checkpoint), device=ref.device, **ref.options)
        return _LOADED[ref.key()]
