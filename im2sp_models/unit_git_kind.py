"""``im2sp``: the unit GiT this project trains (:mod:`im2sp_models.unit_git`) as an Im2Sp model kind.

Its checkpoint is the folder ``train-im2sp`` writes (``config.json``, ``im2sp.json``, ``model.safetensors``);
``generate`` is :func:`im2sp_models.evaluation.generate` (PAD/BOS/EOS 0/1/2, units offset by 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError
from im2sp_models.im2sp_kinds import Reads, register_im2sp_model
from im2sp_models.registry import ModelSettings, folder_checksum
from storage.hashing import fingerprint


class UnitGitSettings(ModelSettings):
    """im2sp's options.

    Attributes:
        beams: Beam size (1: greedy).
        max_units: Most speech units generated per image.
    """

    beams: int = Field(1, ge=1)
    max_units: int = Field(512, ge=1)


@register_im2sp_model
class UnitGitModel:
    """This project's unit GiT: ``generate`` KM200 units from 32 × 32 image-unit grids."""

    name: ClassVar[str] = "im2sp"
    Settings: ClassVar[type[ModelSettings]] = UnitGitSettings
    needs_checkpoint: ClassVar[bool] = True
    reads: ClassVar[Reads] = "image-units"

    def __init__(self, model: Any, settings: UnitGitSettings, checksum: str) -> None:
        self.model = model
        self.settings = settings
        self._checksum = checksum

    @property
    def speech_units(self) -> int:
        """K, from the model folder's ``im2sp.json``."""
        return int(self.model.im2sp_meta["speech_units"])

    @property
    def fingerprint(self) -> str:
        """Hash of the name, the generation settings and the model folder's bytes."""
        return fingerprint([self.name, self.settings.model_dump(), self._checksum])

    def preprocess(self, data: bytes) -> np.ndarray:
        """Not for this kind: it reads image units (the image tokenizer makes them).

        Raises:
            TypeError: Always.
        """
        raise TypeError(f"{self.name} reads image units, not images: tokenize the images first")

    def generate(
        self, inputs: np.ndarray, *, beams: int | None = None, max_units: int | None = None
    ) -> list[list[int]]:
        """KM200 units for a batch of ``(B, 32, 32)`` image-unit grids (None options: the settings')."""
        from im2sp_models.evaluation import generate

        produced = generate(
            self.model, inputs, beams=beams or self.settings.beams, max_units=max_units or self.settings.max_units
        )
        return [[int(unit) for unit in units] for units in produced]

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: UnitGitSettings | None = None, *, device: str = "auto"
    ) -> UnitGitModel:
        """Load a model folder written by train-im2sp.

        Raises:
            CheckpointError: No folder, or not a model folder.
        """
        from im2sp_models.unit_git import load_model

        if checkpoint is None or not checkpoint.is_dir():
            raise CheckpointError(f"{cls.name} needs its checkpoint: the model folder train-im2sp wrote ({checkpoint})")
        model = load_model(checkpoint, device=resolve_device(device))
        return cls(model, settings or UnitGitSettings(), folder_checksum(checkpoint))
