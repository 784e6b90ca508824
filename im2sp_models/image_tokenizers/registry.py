"""The image tokenizer registry: kebab-case names saved in every store, one small class per entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from im2sp_models.registry import Registry

#: Modules that register entries when imported (imported lazily: torch is heavy).
_ENTRY_MODULES = {
    "patch-vq": "im2sp_models.image_tokenizers.patch_vq",
    "vit-vqgan": "im2sp_models.image_tokenizers.vit_vqgan",
}


class ImageTokenizer(Protocol):
    """What every image tokenizer offers: 256×256 RGB in [0, 1] ↔ a 32×32 grid of codebook indices."""

    name: ClassVar[str]

    @property
    def codebook_size(self) -> int:
        """Number of codes K (units are in ``[0, K)``)."""

    @property
    def fingerprint(self) -> str:
        """Hash of name + config + weights: names the stores this tokenizer produces."""

    @property
    def can_decode(self) -> bool:
        """Whether ``decode`` is available (a checkpoint without a decoder cannot reconstruct)."""

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Map ``(B, 3, 256, 256)`` float32 images to ``(B, 32, 32)`` integer units."""

    def decode(self, units: np.ndarray) -> np.ndarray:
        """Map ``(B, 32, 32)`` units back to ``(B, 3, 256, 256)`` float32 images in [0, 1]."""

    def codebook_vectors(self) -> np.ndarray:
        """Return the ``(K, D)`` code vectors (used to initialise unit embeddings downstream)."""


_REGISTRY = Registry("image tokenizer", _ENTRY_MODULES)
#: Class decorator: register a class's ``load`` classmethod under a kebab-case name.
register_tokenizer = _REGISTRY.register


def tokenizer_names() -> list[str]:
    """Every registered name."""
    return _REGISTRY.names()


def load_tokenizer(name: str, checkpoint: Path, *, device: str = "auto", **options: Any) -> ImageTokenizer:
    """Load a tokenizer by registry name from a local checkpoint (file or folder).

    Raises:
        UnknownModelError: If no tokenizer has that name.
        CheckpointError: If the checkpoint cannot be loaded.
    """
    loaded: ImageTokenizer = _REGISTRY.load(name, checkpoint, device=device, **options)
    return loaded
