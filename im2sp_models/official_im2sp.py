"""``official-im2sp``: the authors' released *Image to Speech* model (GiT on pixels), loaded and run as they run it.

Their ``src/models/IM_Speech.py`` builds ``AutoModelForCausalLM.from_pretrained("microsoft/git-large")`` (a plain
transformers ``GitForCausalLM``: CLIP ViT-L/14 image encoder at 224 × 224, 257 image tokens, a 6-layer 768-wide
text decoder), sets ``config.vocab_size = K + 3``, replaces ``output`` by ``Linear(768, K + 3)`` and ties the
word embeddings to it. Nothing else changes: the image encoder, visual projection and decoder keep git-large's
architecture (training started from git-large-coco's weights; the architecture is the same). Ids, generation
and the reading of outputs are :mod:`im2sp_models.official_format`'s; images go through
:mod:`im2sp_models.official_pixels` (their processor).

Here the architecture comes from a local copy of git-large's config (``git_config``: a folder saved with
``save_pretrained``, as ``microsoft/git-large`` or ``microsoft/git-large-coco``; its ``preprocessor_config.json``
is read when present), sized to the checkpoint's output layer, and every key of the checkpoint must match
(:func:`~im2sp_models.official_format.match_keys`). Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError
from im2sp_models.im2sp_kinds import Reads, register_im2sp_model
from im2sp_models.official_format import (
    Postprocess,
    generate_rows,
    git_config,
    match_keys,
    read_state,
    speech_units_of,
    tie_output,
    tokens_to_units,
)
from im2sp_models.official_pixels import ClipPreprocess
from im2sp_models.registry import ModelSettings
from storage.hashing import fingerprint, sha256_file


class OfficialIm2SpSettings(ModelSettings):
    """official-im2sp's options.

    Attributes:
        git_config: Local folder of git-large's ``config.json`` (and ``preprocessor_config.json``).
        beams: Beam size (their scripts: 1, greedy).
        max_length: Longest generated row, BOS included (their scripts: 512).
        postprocess: ``clean`` (cut at the first EOS) or ``as-released`` (their string cut, quirks included).
    """

    git_config: Path | None = None
    beams: int = Field(1, ge=1)
    max_length: int = Field(512, ge=2)
    postprocess: Postprocess = "clean"


def generate_units(
    model: Any, inputs: Any, settings: OfficialIm2SpSettings, units: int, *, beams: int | None, max_units: int | None
) -> list[list[int]]:
    """Their ``generate`` call on a batch of model inputs, rows mapped back to KM200 units (both kinds share it).

    Args:
        model: The GiT.
        inputs: Pixels or image-unit vectors, on the model's device.
        settings: The kind's options (beams, ``max_length``, post-processing).
        units: K.
        beams: Beam size (None: the settings').
        max_units: Most units per image (None: the settings' ``max_length`` less BOS and EOS).
    """
    max_length = settings.max_length if max_units is None else max_units + 2
    rows = generate_rows(model, inputs, beams=beams or settings.beams, max_length=max_length)
    return tokens_to_units(rows, units, settings.postprocess)


def config_checksum(folder: Path) -> str:
    """sha256 over the config files that shape the model and its inputs (those present)."""
    files = [folder / name for name in ("config.json", "preprocessor_config.json") if (folder / name).is_file()]
    return fingerprint([path.name + ":" + sha256_file(path) for path in files])


@register_im2sp_model
class OfficialIm2Sp:
    """The released pixel model: ``preprocess`` image bytes, ``generate`` KM200 units."""

    name: ClassVar[str] = "official-im2sp"
    Settings: ClassVar[type[ModelSettings]] = OfficialIm2SpSettings
    needs_checkpoint: ClassVar[bool] = True
    reads: ClassVar[Reads] = "images"

    def __init__(
        self,
        model: Any,
        settings: OfficialIm2SpSettings,
        speech_units: int,
        processor: ClipPreprocess,
        checksum: str,
        device: str,
    ) -> None:
        self.model = model
        self.settings = settings
        self.processor = processor
        self.device = device
        self._speech_units = speech_units
        self._checksum = checksum

    @property
    def speech_units(self) -> int:
        """K (200 for the released model)."""
        return self._speech_units

    @property
    def fingerprint(self) -> str:
        """Hash of the name, the generation settings, the preprocessing and the checkpoint and config bytes."""
        options = self.settings.model_dump(exclude={"git_config"})
        return fingerprint([self.name, options, repr(self.processor), self._checksum])

    def preprocess(self, data: bytes) -> np.ndarray:
        """Image bytes → ``(3, 224, 224)`` float32, as their processor makes them."""
        return self.processor(data)

    def generate(
        self, inputs: np.ndarray, *, beams: int | None = None, max_units: int | None = None
    ) -> list[list[int]]:
        """KM200 units for a batch of preprocessed images ``(B, 3, H, W)``, one ``generate`` call for the batch.

        Args:
            inputs: Images from :meth:`preprocess`, stacked.
            beams: Beam size (None: the settings').
            max_units: Most units per image (None: the settings' ``max_length`` less BOS and EOS).
        """
        import torch

        pixels = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(self.device)
        return generate_units(self.model, pixels, self.settings, self._speech_units, beams=beams, max_units=max_units)

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: OfficialIm2SpSettings | None = None, *, device: str = "auto"
    ) -> OfficialIm2Sp:
        """Load the released ``.ckpt`` (``{"state_dict": ...}``) on git-large's config from ``settings.git_config``.

        Raises:
            CheckpointError: No checkpoint or config, unknown or missing keys (listed), shapes that differ.
        """
        import torch
        from transformers import GitForCausalLM

        options = settings or OfficialIm2SpSettings()
        if checkpoint is None:
            raise CheckpointError(f"{cls.name} needs its checkpoint: the released Im2Sp .ckpt file")
        state = read_state(checkpoint)
        units = speech_units_of(checkpoint, state)
        config = git_config(options.git_config, cls.name, units)
        torch.manual_seed(0)  # every weight is overwritten; a fixed seed keeps construction reproducible
        model: Any = GitForCausalLM(config)
        tie_output(model)
        model.load_state_dict(match_keys(checkpoint, state, model), strict=False)
        resolved = resolve_device(device)
        assert options.git_config is not None  # git_config() refused None
        checksum = sha256_file(checkpoint) + config_checksum(options.git_config)
        processor = ClipPreprocess.from_folder(options.git_config)
        return cls(model.to(resolved).eval(), options, units, processor, checksum, resolved)
