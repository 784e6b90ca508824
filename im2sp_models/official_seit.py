"""The SeiT image-unit front end of the released image-unit model, with timm's parameter names.

SeiT's ``deit_base_token_32`` is a timm ``VisionTransformer``; the released checkpoint stores it under
``model.git.image_encoder.vision_model.`` with timm's names: ``cls_token`` ``(1, 1, D)``, ``pos_embed``
``(1, 197, D)``, ``patch_embed.proj`` (the 4 × 4, stride 2, padding 1 convolution), and per block
``norm1``, ``attn.qkv`` (q, k, v stacked, heads contiguous), ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``
(exact GELU between). Pre-norm blocks: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``; LayerNorm eps 1e-6.
This module builds that network from the checkpoint's shapes (timm is not needed) and wraps it where GiT
expects its image encoder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from im2sp_models.errors import CheckpointError
from im2sp_models.official_format import PREFIX

SEIT_PREFIX = PREFIX + "git.image_encoder.vision_model."
#: The grid the SeiT ViT reads (``CC(28)`` of the tokenizer's 32 × 32).
CROP = 28
STRIDE, PADDING = 2, 1
LAYER_NORM_EPS = 1e-6


@dataclass(frozen=True)
class SeiTShape:
    """Sizes of the SeiT ViT: input channels, width, depth, heads, MLP width, conv kernel, tokens (with [CLS])."""

    channels: int
    width: int
    depth: int
    heads: int
    mlp: int
    kernel: int
    tokens: int


def seit_shape(path: Path, state: dict[str, Any], *, heads: int) -> SeiTShape:
    """Read the SeiT ViT's sizes off a released checkpoint.

    Raises:
        CheckpointError: The front end's tensors are absent (e.g. the pixel model's checkpoint), or inconsistent.
    """
    proj, pos = state.get(SEIT_PREFIX + "patch_embed.proj.weight"), state.get(SEIT_PREFIX + "pos_embed")
    fc1 = state.get(SEIT_PREFIX + "blocks.0.mlp.fc1.weight")
    if proj is None or pos is None or fc1 is None:
        raise CheckpointError(
            f"{path}: no SeiT image-unit front end ({SEIT_PREFIX}patch_embed.proj.weight, pos_embed, blocks.*): "
            "not the released image-unit model (the pixel model is official-im2sp)"
        )
    blocks = {int(m.group(1)) for k in state if (m := re.match(re.escape(SEIT_PREFIX) + r"blocks\.(\d+)\.", k))}
    shape = SeiTShape(
        channels=int(proj.shape[1]),
        width=int(proj.shape[0]),
        depth=len(blocks),
        heads=heads,
        mlp=int(fc1.shape[0]),
        kernel=int(proj.shape[2]),
        tokens=int(pos.shape[1]),
    )
    side = (CROP + 2 * PADDING - shape.kernel) // STRIDE + 1
    if shape.tokens != side * side + 1 or shape.width % heads or blocks != set(range(shape.depth)):
        raise CheckpointError(
            f"{path}: SeiT front end of {shape} does not fit a {CROP}×{CROP} input "
            f"({side * side} patches + [CLS]) with {heads} heads"
        )
    return shape


def crop_centre(vectors: Any) -> Any:
    """``CC(28)``: the centre 28 × 28 of ``(B, C, H, W)`` (offsets floored), as their token transform.

    Raises:
        ValueError: A grid smaller than 28 × 28.
    """
    height, width = vectors.shape[-2:]
    if height < CROP or width < CROP:
        raise ValueError(f"image-unit grids must be at least {CROP}×{CROP}, got {height}×{width}")
    top, left = (height - CROP) // 2, (width - CROP) // 2
    return vectors[..., top : top + CROP, left : left + CROP]


def build_image_encoder(shape: SeiTShape) -> Any:
    """GiT's ``image_encoder`` replaced: a module whose ``vision_model`` is the SeiT ViT (timm names)."""
    import torch
    from torch import nn
    from transformers.modeling_outputs import BaseModelOutput

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(shape.width, 3 * shape.width)
            self.proj = nn.Linear(shape.width, shape.width)

        def forward(self, x: Any) -> Any:
            batch, tokens, width = x.shape
            q, k, v = self.qkv(x).reshape(batch, tokens, 3, shape.heads, width // shape.heads).permute(2, 0, 3, 1, 4)
            mixed = nn.functional.scaled_dot_product_attention(q, k, v)
            return self.proj(mixed.transpose(1, 2).reshape(batch, tokens, width))

    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(shape.width, shape.mlp)
            self.fc2 = nn.Linear(shape.mlp, shape.width)

        def forward(self, x: Any) -> Any:
            return self.fc2(nn.functional.gelu(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(shape.width, eps=LAYER_NORM_EPS)
            self.attn = Attention()
            self.norm2 = nn.LayerNorm(shape.width, eps=LAYER_NORM_EPS)
            self.mlp = Mlp()

        def forward(self, x: Any) -> Any:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class PatchEmbed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Conv2d(shape.channels, shape.width, shape.kernel, stride=STRIDE, padding=PADDING)

    class SeiTViT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, shape.width))
            self.pos_embed = nn.Parameter(torch.zeros(1, shape.tokens, shape.width))
            self.patch_embed = PatchEmbed()
            self.blocks = nn.Sequential(*(Block() for _ in range(shape.depth)))

        def forward(self, pixel_values: Any, **_: Any) -> Any:
            patches = self.patch_embed.proj(pixel_values).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls_token.expand(patches.shape[0], -1, -1), patches], dim=1) + self.pos_embed
            return BaseModelOutput(last_hidden_state=self.blocks(x))

    class ImageEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vision_model = SeiTViT()

        def forward(self, pixel_values: Any, **kwargs: Any) -> Any:
            return self.vision_model(pixel_values, **kwargs)

    return ImageEncoder()
