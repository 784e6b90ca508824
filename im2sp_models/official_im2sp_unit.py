"""``official-im2sp-unit``: the authors' released *Image unit to Speech* model (GiT over SeiT image units).

Their ``src/models/IMunit_Speech.py`` starts from git-large (``GitForCausalLM_interpolation``, GiT with a vision
tower that can interpolate positions -- replaced right away, so it never runs) and changes:

- ``config.vision_config.hidden_size = 768``; ``git.image_encoder.vision_model`` becomes SeiT's
  ``deit_base_token_32`` (``src/models/SeiT.py``): a timm ``VisionTransformer`` (``img_size=28``, 12 blocks,
  width 768, 12 heads, MLP ratio 4, qkv bias, LayerNorm eps 1e-6) whose patch embedding is
  ``Conv2d(32, 768, kernel 4, stride 2, padding 1)`` -- 28 × 28 → 14 × 14 = 196 patches, + [CLS] = 197 tokens
  with learned ``pos_embed``. Its GiT forward is patch embedding → [CLS] → ``+ pos_embed`` → blocks; the final
  ``norm`` and the classifier ``head`` exist (saved in the checkpoint) but are never used;
- ``git.visual_projection`` is rebuilt for the 768-wide features (``Linear(768, 768)`` + LayerNorm with the
  vision config's eps);
- the six decoder layers' ``image_patch_tokens`` are set to 197 (the ``(224 / 16)² + 1`` they compute);
- the speech-unit output layer and ids as :mod:`im2sp_models.official_format` says.

**Image units.** The wrapper holds SeiT's pickled tokenizer as ``self.tokenizer`` (so the checkpoint carries
``tokenizer.*`` weights, unused here: image units come from the image-units store) and ``codebook.ckpt`` as a
plain tensor (so *not* in the checkpoint: ``codebook`` is a setting). Per image: 256 × 256 bicubic resize of
the RGB image (``dataset_IMunit.py``: ``transforms.Resize((256, 256), interpolation=3)``, ``ToTensor``, no
normalisation) → tokenizer → a 32 × 32 grid of 32-d vectors → each replaced by the nearest codebook row by
cosine (``utils.convert_to_tokens``; the ids are what ``vit-vqgan`` with SeiT's pair stores) and then by that
row's *raw* (unnormalised) vector → ``(B, 32, 32, 32)`` channels first → centre crop 28 × 28 (``CC(28)``:
offset ``(32 - 28) // 2 = 2``) → the ViT above. :meth:`OfficialIm2SpUnit.generate` takes the 32 × 32 id grids
and does the steps from the codebook lookup on.

**Which units.** Only ids made as the authors made them mean what the model learned: SeiT's tokenizer with *this*
``codebook.ckpt``, their decoding of the image file (``image_preprocess: official``) and fp32. An id grid of
another tokenizer is in range all the same, so :meth:`OfficialIm2SpUnit.image_units_problem` judges the units
by what tokenize-images recorded of them (:func:`tokenizer_provenance`), never by their values or names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError
from im2sp_models.im2sp_kinds import Reads, register_im2sp_model
from im2sp_models.official_format import (
    git_config,
    match_keys,
    read_state,
    speech_units_of,
    tie_output,
)
from im2sp_models.official_im2sp import OfficialIm2SpSettings, config_checksum, generate_units
from im2sp_models.official_seit import SEIT_PREFIX, build_image_encoder, crop_centre, seit_shape
from im2sp_models.registry import ModelSettings
from storage.hashing import fingerprint, sha256_file

#: Keys that may be in a released checkpoint and are not used: SeiT's tokenizer, the ViT's final norm and head.
UNUSED = ("position_ids", "tokenizer.", SEIT_PREFIX + "norm.", SEIT_PREFIX + "head.", SEIT_PREFIX + "fc_norm.")
#: How to make units this model reads, as its refusal says it.
UNITS_FIX = (
    "tokenize-images with SeiT's ViT-VQGAN as the authors did (image_tokenizer {name: vit-vqgan, checkpoint: "
    "SeiT's folder of tokenizer.ckpt + the model's codebook.ckpt, trust_pickle: true, precision: fp32, "
    "image_preprocess: official}), then run build-training-shards"
)


def tokenizer_provenance(tokenizer: str, checkpoint: str, precision: str) -> dict[str, Any]:
    """What tokenize-images records of a tokenizer beside its fingerprint (a hash, which cannot tell these).

    Args:
        tokenizer: The tokenizer's registry name.
        checkpoint: Its local checkpoint ("" for none): SeiT's pair is a folder holding ``tokenizer.ckpt``, as
            ``vit-vqgan`` loads it.
        precision: The tokenizer's precision setting.

    Returns:
        ``seit_codebook_sha256`` (sha256 of SeiT's ``codebook.ckpt``; None for any other tokenizer or checkpoint)
        and ``precision``.
    """
    folder = Path(checkpoint)
    seit = tokenizer == "vit-vqgan" and checkpoint != "" and (folder / "tokenizer.ckpt").is_file()
    return {"seit_codebook_sha256": sha256_file(folder / "codebook.ckpt") if seit else None, "precision": precision}


class OfficialIm2SpUnitSettings(OfficialIm2SpSettings):
    """official-im2sp-unit's options: the pixel model's, plus the SeiT front end's.

    Attributes:
        codebook: SeiT's ``codebook.ckpt`` (an ``N × 32`` tensor; the image units index it).
        seit_heads: Attention heads of the SeiT ViT (``deit_base_token_32``: 12; shapes cannot tell).
    """

    codebook: Path | None = None
    seit_heads: int = Field(12, ge=1)


def read_codebook(path: Path | None, channels: int) -> Any:
    """SeiT's codebook tensor ``(N, channels)``, read with ``weights_only=True``.

    Raises:
        CheckpointError: No path, an unreadable file, or a tensor of another shape.
    """
    import torch

    if path is None:
        raise CheckpointError("official-im2sp-unit needs codebook: SeiT's codebook.ckpt (from SeiT_weights.tar)")
    try:
        codebook = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # missing file, or not plain tensors
        raise CheckpointError(f"{path}: cannot be read as SeiT's codebook ({type(error).__name__}: {error})") from error
    if not isinstance(codebook, torch.Tensor) or codebook.ndim != 2 or codebook.shape[1] != channels:
        raise CheckpointError(f"{path}: expected an N × {channels} tensor (SeiT's codebook.ckpt)")
    return codebook.float()


@register_im2sp_model
class OfficialIm2SpUnit:
    """The released image-unit model: ``generate`` KM200 units from 32 × 32 image-unit grids."""

    name: ClassVar[str] = "official-im2sp-unit"
    Settings: ClassVar[type[ModelSettings]] = OfficialIm2SpUnitSettings
    needs_checkpoint: ClassVar[bool] = True
    reads: ClassVar[Reads] = "image-units"

    def __init__(
        self,
        model: Any,
        settings: OfficialIm2SpUnitSettings,
        speech_units: int,
        codebook: Any,
        checksum: str,
        codebook_sha256: str = "",
    ) -> None:
        self.model = model
        self.settings = settings
        self.codebook = codebook
        self._speech_units = speech_units
        self._checksum = checksum
        self._codebook_sha256 = codebook_sha256

    @property
    def speech_units(self) -> int:
        """K (200 for the released model)."""
        return self._speech_units

    @property
    def fingerprint(self) -> str:
        """Hash of the name, the generation settings and the checkpoint, codebook and config bytes."""
        options = self.settings.model_dump(exclude={"git_config", "codebook"})
        return fingerprint([self.name, options, self._checksum])

    def image_units_problem(self, produced_by: Mapping[str, Any]) -> str | None:
        """Why units whose image-units ``version.json`` records ``produced_by`` are not this model's, or None.

        Args:
            produced_by: What tokenize-images recorded: ``tokenizer``, ``image_preprocess`` (absent: ``ours``),
                ``provenance`` (:func:`tokenizer_provenance`; absent in versions made before it was recorded).

        Returns:
            One line: what differs from the authors' tokenization, and how to make units that match.
        """
        tokenizer = produced_by.get("tokenizer")
        provenance = produced_by.get("provenance")
        preprocess = produced_by.get("image_preprocess", "ours")
        if tokenizer != "vit-vqgan":
            why = f"they are {tokenizer} units, not SeiT's ViT-VQGAN's"
        elif not isinstance(provenance, Mapping):
            why = "their provenance is unknown (tokenized before tokenize-images recorded which checkpoint)"
        elif provenance.get("seit_codebook_sha256") is None:
            why = "they are units of a ViT-VQGAN checkpoint that is not SeiT's tokenizer + codebook pair"
        elif provenance["seit_codebook_sha256"] != self._codebook_sha256:
            why = f"they index another SeiT codebook.ckpt than the model's ({self.settings.codebook})"
        elif preprocess != "official":
            why = f"the images were decoded with image_preprocess: {preprocess}, not the authors' (official)"
        elif provenance.get("precision") != "fp32":
            why = f"they were tokenized in {provenance.get('precision')}, not fp32 as the authors did"
        else:
            return None
        return f"{why}: {UNITS_FIX}"

    def preprocess(self, data: bytes) -> np.ndarray:
        """Not for this kind: it reads image units (the image tokenizer makes them).

        Raises:
            TypeError: Always.
        """
        raise TypeError(f"{self.name} reads image units, not images: tokenize the images first")

    def generate(
        self, inputs: np.ndarray, *, beams: int | None = None, max_units: int | None = None
    ) -> list[list[int]]:
        """KM200 units for a batch of image-unit grids ``(B, 32, 32)`` (ids into the codebook).

        Args:
            inputs: The grids (at least 28 × 28; centre-cropped to 28 × 28 as theirs).
            beams: Beam size (None: the settings').
            max_units: Most units per image (None: the settings' ``max_length`` less BOS and EOS).

        Raises:
            ValueError: Grids of another rank or size, or ids outside the codebook.
        """
        import torch

        grids = torch.from_numpy(np.asarray(inputs, dtype=np.int64))
        if grids.ndim != 3:
            raise ValueError(f"expected (batch, 32, 32) image-unit grids, got shape {tuple(grids.shape)}")
        if grids.numel() and (int(grids.min()) < 0 or int(grids.max()) >= self.codebook.shape[0]):
            raise ValueError(f"image units outside the codebook's [0, {self.codebook.shape[0]})")
        vectors = crop_centre(self.codebook[grids].permute(0, 3, 1, 2))
        device = next(self.model.parameters()).device
        return generate_units(
            self.model, vectors.to(device), self.settings, self._speech_units, beams=beams, max_units=max_units
        )

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: OfficialIm2SpUnitSettings | None = None, *, device: str = "auto"
    ) -> OfficialIm2SpUnit:
        """Load the released ``.ckpt`` on git-large's config, the SeiT front end sized from the checkpoint.

        Raises:
            CheckpointError: No checkpoint, config or codebook; unknown or missing keys (listed); shapes that differ.
        """
        import torch
        from transformers import GitForCausalLM

        options = settings or OfficialIm2SpUnitSettings()
        if checkpoint is None:
            raise CheckpointError(f"{cls.name} needs its checkpoint: the released Im2Sp image-unit .ckpt file")
        state = read_state(checkpoint)
        units = speech_units_of(checkpoint, state)
        shape = seit_shape(checkpoint, state, heads=options.seit_heads)
        config = git_config(options.git_config, cls.name, units)
        config.vision_config.hidden_size = shape.width
        config.vision_config.num_hidden_layers = 0  # git-large's ViT-L is replaced: do not build it
        torch.manual_seed(0)
        model: Any = GitForCausalLM(config)
        model.git.image_encoder = build_image_encoder(shape)
        for layer in model.git.encoder.layer:
            layer.attention.self.image_patch_tokens = shape.tokens
        tie_output(model)
        model.load_state_dict(match_keys(checkpoint, state, model, UNUSED), strict=False)
        codebook = read_codebook(options.codebook, shape.channels)
        assert options.git_config is not None and options.codebook is not None  # refused above when None
        codebook_sha256 = sha256_file(options.codebook)
        checksum = sha256_file(checkpoint) + codebook_sha256 + config_checksum(options.git_config)
        return cls(model.to(resolve_device(device)).eval(), options, units, codebook, checksum, codebook_sha256)
