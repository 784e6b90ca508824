"""The Im2Sp model kinds registry: which image-to-speech-unit model evaluate-im2sp runs.

Entries: ``im2sp`` (the unit GiT this project trains, :mod:`im2sp_models.unit_git`), ``official-im2sp`` (the
authors' released pixel model) and ``official-im2sp-unit`` (their released image-unit model). Each entry reads
either ``image-units`` (``(B, 32, 32)`` grids of image-tokenizer ids, as the image-units store holds them) or
``images`` (encoded image files, through the entry's own ``preprocess``), and ``generate`` returns KM200
speech-unit ids per input (lists of ints in ``[0, K)``, consecutive repeats as generated). Other packages
register kinds under the ``im2sp.models`` entry-point group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from im2sp_models.registry import ModelEntry, ModelSettings, Registry

#: Built-in name → the module that registers it (imported lazily: torch is heavy).
BUILTINS = {
    "im2sp": "im2sp_models.unit_git_kind",
    "official-im2sp": "im2sp_models.official_im2sp",
    "official-im2sp-unit": "im2sp_models.official_im2sp_unit",
}

Reads = Literal["image-units", "images"]


class Im2SpModel(ModelEntry, Protocol):
    """What every Im2Sp model kind offers."""

    #: What ``generate`` takes: ``image-units`` grids or ``images`` (arrays made by the entry's ``preprocess``).
    reads: ClassVar[Reads]

    @property
    def speech_units(self) -> int:
        """K, the speech codebook size (generated ids are in ``[0, K)``)."""

    @property
    def fingerprint(self) -> str:
        """Hash of the name, every setting that changes the output, and the weights' checksum."""

    def preprocess(self, data: bytes) -> np.ndarray:
        """An encoded image → the array ``generate`` takes (``images`` kinds; others raise ``TypeError``)."""

    def generate(
        self, inputs: np.ndarray, *, beams: int | None = None, max_units: int | None = None
    ) -> list[list[int]]:
        """KM200 unit ids for a batch of inputs; ``None`` options take the kind's defaults."""


IM2SP_MODELS = Registry[Im2SpModel]("Im2Sp model kind", "im2sp.models", BUILTINS, required=("reads",))
#: Class decorator: register an Im2Sp model kind under its ``name``.
register_im2sp_model = IM2SP_MODELS.register
#: Every name, built-in or from a plugin.
im2sp_model_names = IM2SP_MODELS.names


def load_im2sp_model(
    name: str, checkpoint: Path | None, *, device: str = "auto", settings: ModelSettings | None = None, **options: Any
) -> Im2SpModel:
    """Load an Im2Sp model kind by registry name from its local checkpoint.

    Raises:
        UnknownModelError: If no kind has that name.
        ConfigError: If an option is not one of the kind's settings, or a value it refuses.
        CheckpointError: If the checkpoint cannot be loaded.
    """
    return IM2SP_MODELS.load(name, checkpoint, device=device, settings=settings, **options)
