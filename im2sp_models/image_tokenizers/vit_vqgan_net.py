"""The ViT-VQGAN network (Yu et al. 2022), laid out so its state-dict keys match the released checkpoints.

Encoder: 8×8 conv patch embedding + fixed 2-D sin-cos positions + pre-norm transformer (Tanh MLP, final
LayerNorm). Quantizer: linear to 32-d, l2-normalised nearest neighbour in an l2-normalised codebook.
Decoder: positions + transformer + 8×8 transposed conv to pixels. Pixels are in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn

DIM_HEAD = 64


@dataclass(frozen=True)
class ViTVQConfig:
    """Architecture of a ViT-VQGAN (defaults: the released "small" model)."""

    image_size: int = 256
    patch_size: int = 8
    enc_dim: int = 512
    enc_depth: int = 8
    enc_heads: int = 8
    enc_mlp: int = 2048
    dec_dim: int = 512
    dec_depth: int = 8
    dec_heads: int = 8
    dec_mlp: int = 2048
    embed_dim: int = 32
    n_embed: int = 8192

    @property
    def grid(self) -> int:
        """Tokens per side."""
        return self.image_size // self.patch_size


PRESETS = {
    "small": ViTVQConfig(),
    "base": ViTVQConfig(
        enc_dim=768, enc_depth=12, enc_heads=12, enc_mlp=3072, dec_dim=768, dec_depth=12, dec_heads=12, dec_mlp=3072
    ),
    "large": ViTVQConfig(dec_dim=1280, dec_depth=32, dec_heads=16, dec_mlp=5120),
}


def sincos_positions(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin-cos positions, ``(1, grid², dim)``: column terms first, then row terms."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    parts = []
    for coordinate in (cols.reshape(-1), rows.reshape(-1)):
        angles = np.outer(coordinate, omega)
        parts += [np.sin(angles), np.cos(angles)]
    return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32))[None]


class _Tokens(nn.Module):
    """``(B, C, H, W)`` → ``(B, H·W, C)`` (parameter-free, keeps the checkpoint's Sequential indices)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class _Grid(nn.Module):
    """``(B, H·W, C)`` → ``(B, C, H, W)``."""

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], self.grid, self.grid)


class PreNorm(nn.Module):
    """LayerNorm, then the wrapped block."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))  # type: ignore[no-any-return]


class Attention(nn.Module):
    """Multi-head self-attention with one bias-free qkv projection and 64-d heads."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, heads * DIM_HEAD * 3, bias=False)
        self.to_out = nn.Linear(heads * DIM_HEAD, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, DIM_HEAD).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, self.heads * DIM_HEAD))  # type: ignore[no-any-return]


class FeedForward(nn.Module):
    """Linear → Tanh → Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class Transformer(nn.Module):
    """Pre-norm residual blocks and a final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNorm(dim, Attention(dim, heads)), PreNorm(dim, FeedForward(dim, mlp))])
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            attention: nn.Module = layer[0]  # type: ignore[index]
            feed_forward: nn.Module = layer[1]  # type: ignore[index]
            x = attention(x) + x
            x = feed_forward(x) + x
        return self.norm(x)  # type: ignore[no-any-return]


class ViTEncoder(nn.Module):
    """Patch embedding + positions + transformer."""

    def __init__(self, c: ViTVQConfig) -> None:
        super().__init__()
        self.to_patch_embedding = nn.Sequential(nn.Conv2d(3, c.enc_dim, c.patch_size, c.patch_size), _Tokens())
        self.en_pos_embedding = nn.Parameter(sincos_positions(c.enc_dim, c.grid), requires_grad=False)
        self.transformer = Transformer(c.enc_dim, c.enc_depth, c.enc_heads, c.enc_mlp)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.to_patch_embedding(images) + self.en_pos_embedding)  # type: ignore[no-any-return]


class ViTDecoder(nn.Module):
    """Positions + transformer + transposed-conv back to pixels."""

    def __init__(self, c: ViTVQConfig) -> None:
        super().__init__()
        self.transformer = Transformer(c.dec_dim, c.dec_depth, c.dec_heads, c.dec_mlp)
        self.de_pos_embedding = nn.Parameter(sincos_positions(c.dec_dim, c.grid), requires_grad=False)
        self.to_pixel = nn.Sequential(_Grid(c.grid), nn.ConvTranspose2d(c.dec_dim, 3, c.patch_size, c.patch_size))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.to_pixel(self.transformer(tokens + self.de_pos_embedding))  # type: ignore[no-any-return]


class Quantizer(nn.Module):
    """The codebook (``embedding.weight``, K × 32)."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the closest code by cosine similarity (= l2 distance of normalised vectors)."""
        codes = F.normalize(self.embedding.weight, dim=-1)
        return (F.normalize(z, dim=-1) @ codes.t()).argmax(dim=-1)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Normalised code vectors of indices."""
        return F.normalize(self.embedding(ids), dim=-1)


class ViTVQ(nn.Module):
    """Encoder, quantizer and decoder with the released checkpoints' module names."""

    def __init__(self, config: ViTVQConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ViTEncoder(config)
        self.decoder = ViTDecoder(config)
        self.quantizer = Quantizer(config.n_embed, config.embed_dim)
        self.pre_quant = nn.Linear(config.enc_dim, config.embed_dim)
        self.post_quant = nn.Linear(config.embed_dim, config.dec_dim)

    def encode_codes(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` in [0, 1] → ``(B, grid²)`` code indices."""
        return self.quantizer.nearest(self.pre_quant(self.encoder(images)))

    def decode_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, grid²)`` indices → ``(B, 3, S, S)`` images clamped to [0, 1]."""
        return self.decoder(self.post_quant(self.quantizer.lookup(ids))).clamp(0.0, 1.0)  # type: ignore[no-any-return]


def infer_config(state: dict[str, torch.Tensor], image_size: int = 256) -> ViTVQConfig:
    """Read the architecture off a state dict's shapes (dims, depths, heads, MLP widths, codebook)."""

    def depth(prefix: str) -> int:
        return len({k.split(".")[3] for k in state if k.startswith(f"{prefix}.transformer.layers.")})

    patch = state["encoder.to_patch_embedding.0.weight"]
    return ViTVQConfig(
        image_size=image_size,
        patch_size=int(patch.shape[-1]),
        enc_dim=int(patch.shape[0]),
        enc_depth=depth("encoder"),
        enc_heads=int(state["encoder.transformer.layers.0.0.fn.to_qkv.weight"].shape[0]) // (3 * DIM_HEAD),
        enc_mlp=int(state["encoder.transformer.layers.0.1.fn.net.0.weight"].shape[0]),
        dec_dim=int(state["decoder.to_pixel.1.weight"].shape[0]),
        dec_depth=depth("decoder"),
        dec_heads=int(state["decoder.transformer.layers.0.0.fn.to_qkv.weight"].shape[0]) // (3 * DIM_HEAD),
        dec_mlp=int(state["decoder.transformer.layers.0.1.fn.net.0.weight"].shape[0]),
        embed_dim=int(state["quantizer.embedding.weight"].shape[1]),
        n_embed=int(state["quantizer.embedding.weight"].shape[0]),
    )
