"""The image tokenizer registry: what a tokenizer offers, and the registry every tokenizer joins.

A new tokenizer is one module holding its class (``@register_tokenizer``, ``name``, ``Settings``,
``needs_checkpoint``, ``learns_codebook``, ``load``) plus its line in :data:`BUILTINS`; a tokenizer from another
package registers under the ``im2sp.image_tokenizers`` entry-point group instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from im2sp_models.registry import ModelEntry, ModelSettings, Registry

#: Built-in name → the module that registers it (imported lazily: torch is heavy).
BUILTINS = {
    "patch-vq": "im2sp_models.image_tokenizers.patch_vq",
    "vit-vqgan": "im2sp_models.image_tokenizers.vit_vqgan",
}


class ImageTokenizer(ModelEntry, Protocol):
    """What every image tokenizer offers: 256×256 RGB in [0, 1] ↔ a 32×32 grid of codebook indices."""

    #: Whether learn-image-codebook trains its codebook (then a missing checkpoint means the store's codebook).
    learns_codebook: ClassVar[bool]

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


TOKENIZERS = Registry[ImageTokenizer](
    "image tokenizer", "im2sp.image_tokenizers", BUILTINS, required=("learns_codebook",)
)
#: Class decorator: register an image tokenizer under its ``name``.
register_tokenizer = TOKENIZERS.register
#: Every name, built-in or from a plugin.
tokenizer_names = TOKENIZERS.names


def load_tokenizer(
    name: str, checkpoint: Path | None, *, device: str = "auto", settings: ModelSettings | None = None, **options: Any
) -> ImageTokenizer:
    """Load a tokenizer by registry name from a local checkpoint (file or folder; None for weight-free ones).

    Raises:
        UnknownModelError: If no tokenizer has that name.
        ConfigError: If an option is not one of the tokenizer's settings, or a value it refuses.
        CheckpointError: If the checkpoint cannot be loaded.
    """
    return TOKENIZERS.load(name, checkpoint, device=device, settings=settings, **options)
