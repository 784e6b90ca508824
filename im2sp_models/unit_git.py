"""The image-unit → speech-unit model: GiT (``GitForCausalLM``) with its image encoder replaced by a unit encoder.

As in the paper's image-unit variant, the image side reads a 32 × 32 grid of image units instead of pixels:

    unit → embedding (``code_dim``; initialised from the image tokenizer's codebook vectors when given)
         → 28 × 28 crop of the grid (centre crop; a random crop when training)
         → patch stem: conv 4 × 4, stride 2, padding 1 → 14 × 14 = 196 patches of ``hidden_size``
         → [CLS] + 196 patches + position embeddings (197 positions, as GiT-base's 224 / 16 ViT)
         → pre-norm, ViT blocks (transformers' ``GitVisionEncoder``), post-norm
         → GiT's visual projection → the GiT decoder, which attends to all 197 image tokens.

The unit encoder keeps the parameter names of GiT's vision tower (``git.image_encoder.vision_model.*``), so a
GiT checkpoint's class/position embeddings, norms and ViT blocks load into it wherever the shapes match;
only the patch embedding (pixels) has no counterpart. GiT passes images to its encoder as ``pixel_values`` of
rank 4, so unit grids travel as ``(batch, 1, 32, 32)`` float tensors (exact for ids below 2**24).

**Speech-unit ids** (the decoder vocabulary, ``K + 3`` entries): ``PAD = 0``, ``BOS = 1``, ``EOS = 2``, and
speech unit ``u`` (0 ≤ u < K) is token ``u + 3``. A target sequence is ``[BOS, u1 + 3, …, un + 3, EOS]``.
GiT's logits cover the 197 image positions first: :func:`text_logits` drops them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from im2sp_models.errors import CheckpointError

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIAL_TOKENS = 3
GRID, CROP = 32, 28
PATCHES = 14 * 14
IMAGE_TOKENS = PATCHES + 1
META_FILE = "im2sp.json"
WEIGHTS_FILE = "model.safetensors"


def speech_units_to_ids(units: np.ndarray) -> np.ndarray:
    """``[BOS, u + 3 …, EOS]`` for deduplicated speech units ``u``."""
    values = np.asarray(units, dtype=np.int64).reshape(-1)
    if values.size and values.min() < 0:
        raise ValueError("speech units must be non-negative")
    return np.concatenate(([BOS_ID], values + SPECIAL_TOKENS, [EOS_ID])).astype(np.int64)


def ids_to_speech_units(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`speech_units_to_ids`: the units before the first EOS, PAD and BOS dropped."""
    values = np.asarray(ids, dtype=np.int64).reshape(-1)
    stops = np.flatnonzero(values == EOS_ID)
    values = values[: stops[0]] if stops.size else values
    return values[values >= SPECIAL_TOKENS] - SPECIAL_TOKENS


def text_logits(logits: Any) -> Any:
    """The logits of the decoder positions (GiT's output starts with the 197 image positions)."""
    return logits[:, IMAGE_TOKENS:, :]


def crop_grids(grids: Any, *, training: bool, generator: Any = None) -> Any:
    """28 × 28 crops of ``(batch, 32, 32)`` unit grids: centred, or one random offset per grid when training."""
    import torch

    if not training:
        start = (GRID - CROP) // 2
        return grids[:, start : start + CROP, start : start + CROP]
    offsets = torch.randint(0, GRID - CROP + 1, (grids.shape[0], 2), generator=generator)
    return torch.stack(
        [g[int(y) : int(y) + CROP, int(x) : int(x) + CROP] for g, (y, x) in zip(grids, offsets, strict=True)]
    )


def _modules() -> tuple[Any, Any, Any]:
    import torch
    from transformers.modeling_outputs import BaseModelOutput
    from transformers.models.git.modeling_git import GitVisionEncoder

    class UnitEmbeddings(torch.nn.Module):
        def __init__(self, config: Any, image_codebook_size: int, code_dim: int) -> None:
            super().__init__()
            self.unit_embedding = torch.nn.Embedding(image_codebook_size, code_dim)
            self.patch_stem = torch.nn.Conv2d(code_dim, config.hidden_size, kernel_size=4, stride=2, padding=1)
            self.class_embedding = torch.nn.Parameter(torch.randn(config.hidden_size) * 0.02)
            self.position_embedding = torch.nn.Embedding(IMAGE_TOKENS, config.hidden_size)
            self.register_buffer("position_ids", torch.arange(IMAGE_TOKENS)[None, :], persistent=False)

        def forward(self, grids: Any) -> Any:
            codes = self.unit_embedding(grids).permute(0, 3, 1, 2)  # (B, code_dim, 28, 28)
            patches = self.patch_stem(codes).flatten(2).transpose(1, 2)  # (B, 196, hidden)
            cls = self.class_embedding.expand(patches.shape[0], 1, -1)
            return torch.cat([cls, patches], dim=1) + self.position_embedding(self.position_ids)

    class UnitVisionTransformer(torch.nn.Module):
        def __init__(self, config: Any, image_codebook_size: int, code_dim: int) -> None:
            super().__init__()
            self.image_codebook_size = image_codebook_size
            self.embeddings = UnitEmbeddings(config, image_codebook_size, code_dim)
            self.pre_layrnorm = torch.nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.encoder = GitVisionEncoder(config)
            self.post_layernorm = torch.nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

        def forward(self, pixel_values: Any, **_: Any) -> Any:
            grids = pixel_values[:, 0].round().long() if pixel_values.ndim == 4 else pixel_values.long()
            if grids.shape[-2:] == (GRID, GRID):
                grids = crop_grids(grids, training=self.training)
            if grids.shape[-2:] != (CROP, CROP):
                raise ValueError(f"unit grids must be {GRID}x{GRID} or {CROP}x{CROP}, got {tuple(grids.shape)}")
            if int(grids.min()) < 0 or int(grids.max()) >= self.image_codebook_size:
                raise ValueError(f"image units outside [0, {self.image_codebook_size})")
            hidden = self.pre_layrnorm(self.embeddings(grids))
            hidden = self.encoder(inputs_embeds=hidden).last_hidden_state
            return BaseModelOutput(last_hidden_state=self.post_layernorm(hidden))

    class UnitImageEncoder(torch.nn.Module):
        """Stands in for GiT's ``image_encoder`` (a ``GitVisionModel``): same attribute and output."""

        def __init__(self, config: Any, image_codebook_size: int, code_dim: int) -> None:
            super().__init__()
            self.vision_model = UnitVisionTransformer(config, image_codebook_size, code_dim)

        def forward(self, pixel_values: Any, **kwargs: Any) -> Any:
            return self.vision_model(pixel_values, **kwargs)

    return UnitEmbeddings, UnitVisionTransformer, UnitImageEncoder


def git_config(base: Any, speech_units: int) -> Any:
    """A copy of a ``GitConfig`` whose decoder vocabulary is the speech units plus PAD/BOS/EOS."""
    from transformers import GitConfig

    document = base.to_dict()
    document.update(
        vocab_size=speech_units + SPECIAL_TOKENS, pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID
    )
    document["vision_config"].update(image_size=224, patch_size=16)  # 197 image tokens, as the unit encoder
    document.pop("model_type", None)
    document.pop("transformers_version", None)
    return GitConfig(**document)


def build_model(
    base: Any,
    *,
    image_codebook_size: int,
    speech_units: int,
    code_dim: int = 32,
    codebook_vectors: np.ndarray | None = None,
    seed: int = 0,
) -> Any:
    """A randomly initialised GiT with the unit encoder; ``base`` is a ``GitConfig`` (sizes of both towers)."""
    import torch
    from transformers import GitForCausalLM

    torch.manual_seed(seed)
    config = git_config(base, speech_units)
    model: Any = GitForCausalLM(config)
    if codebook_vectors is not None:
        if codebook_vectors.shape[0] != image_codebook_size:
            raise ValueError(f"{codebook_vectors.shape[0]} codebook vectors for {image_codebook_size} image units")
        code_dim = int(np.prod(codebook_vectors.shape[1:]))
    _, _, encoder_class = _modules()
    model.git.image_encoder = encoder_class(config.vision_config, image_codebook_size, code_dim)
    if codebook_vectors is not None:
        vectors = torch.from_numpy(np.asarray(codebook_vectors, dtype=np.float32).reshape(image_codebook_size, -1))
        model.git.image_encoder.vision_model.embeddings.unit_embedding.weight.data.copy_(vectors)
    model.im2sp_meta = {
        "image_codebook_size": image_codebook_size,
        "speech_units": speech_units,
        "code_dim": code_dim,
        "ids": {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, "unit_offset": SPECIAL_TOKENS},
    }
    return model


def from_git_checkpoint(
    folder: Path,
    *,
    image_codebook_size: int,
    speech_units: int,
    code_dim: int = 32,
    codebook_vectors: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[Any, dict[str, list[str]]]:
    """Build the model on a local GiT checkpoint (a ``save_pretrained`` folder), copying matching weights.

    Every weight whose name and shape match is copied: the decoder, the visual projection and the vision
    blocks. Returns the model and ``{"loaded": [...], "skipped": [...]}`` (skipped: names whose shapes
    differ or that have no counterpart, e.g. the word embeddings, the output layer, the pixel patch embedding).
    """
    from transformers import GitConfig, GitForCausalLM

    if not folder.is_dir():
        raise CheckpointError(f"{folder}: a GiT checkpoint is a folder saved with save_pretrained")
    try:
        source = GitForCausalLM.from_pretrained(str(folder), local_files_only=True)
        base = GitConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder}: not a GiT checkpoint ({error})") from error
    model = build_model(
        base,
        image_codebook_size=image_codebook_size,
        speech_units=speech_units,
        code_dim=code_dim,
        codebook_vectors=codebook_vectors,
        seed=seed,
    )
    target = model.state_dict()
    matched = {k: v for k, v in source.state_dict().items() if k in target and target[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    skipped = sorted(k for k in source.state_dict() if k not in matched)
    return model, {"loaded": sorted(matched), "skipped": skipped}


def save_model(model: Any, folder: Path) -> None:
    """Write ``config.json`` (the GiT config), ``im2sp.json`` (unit encoder sizes, id mapping), weights."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(folder))
    (folder / META_FILE).write_text(json.dumps(model.im2sp_meta, indent=1) + "\n")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS_FILE))


def load_model(folder: Path, *, device: str = "cpu") -> Any:
    """Load a model written by :func:`save_model` (every weight must be present), in eval mode."""
    from safetensors.torch import load_file
    from transformers import GitConfig

    if not (folder / META_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
        raise CheckpointError(f"{folder}: not an im2sp model folder (needs {META_FILE} and {WEIGHTS_FILE})")
    meta = json.loads((folder / META_FILE).read_text())
    config = GitConfig.from_pretrained(str(folder), local_files_only=True)
    model = build_model(
        config,
        image_codebook_size=int(meta["image_codebook_size"]),
        speech_units=int(meta["speech_units"]),
        code_dim=int(meta["code_dim"]),
    )
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{folder}: weights do not match the model ({error})") from error
    return model.to(device).eval()
