"""The authors' Im2Sp models rebuilt the way their code builds them, for parity tests (nothing of ours imported).

Their ``Im2Speech`` wrappers (``src/models/IM_Speech.py``, ``IMunit_Speech.py``) load GiT with
``from_pretrained``, swap the output layer for one over ``K + 3`` speech-unit ids tied to the word embeddings,
and -- for the image-unit model -- replace the vision tower by SeiT's timm ViT and the visual projection, then
set the decoder layers' image-token count. Their test scripts call ``generate`` with BOS 101 / EOS 102 / PAD 0
and ``max_length``, drop the BOS column, cut each row's string at ``" 102 "`` and undo the id shift. This module
redoes those steps with transformers' GiT and torch, from a tiny GiT saved with ``save_pretrained``. The
SeiT ViT is written differently from ours on purpose (torch's functional multi-head attention over timm's
``qkv``/``proj`` weights), so a mistake in one would not hide in the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import GenerationConfig, GitConfig, GitForCausalLM
from transformers.modeling_outputs import BaseModelOutput

BOS, EOS, PAD = 101, 102, 0
#: Wide initial weights, so the image changes what a random tiny model says.
INIT = 0.3


def tiny_git_folder(folder: Path, *, image_size: int = 32) -> Path:
    """A tiny GiT saved with ``save_pretrained`` (a stand-in for the local microsoft/git-large folder)."""
    torch.manual_seed(1)
    config = GitConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=INIT,
        vision_config={
            "hidden_size": 24,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": image_size,
            "patch_size": 8,
            "initializer_range": INIT,
        },
    )
    GitForCausalLM(config).save_pretrained(str(folder))
    return folder


class Wrapper(nn.Module):
    """Their ``Im2Speech``: the GiT as ``self.model`` (hence the ``model.`` key prefix)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model


def speech_head(model: Any, vocab: int, eos_bias: float) -> None:
    """Their output swap: ``vocab_size = K + 3``, a new ``Linear`` tied to the word embeddings.

    ``eos_bias`` raises EOS's logit so random weights end rows at different lengths.
    """
    model.config.vocab_size = vocab
    model.output = nn.Linear(model.config.hidden_size, vocab)
    model.git.embeddings.word_embeddings.weight = model.output.weight
    with torch.no_grad():
        model.output.bias[EOS] += eos_bias


def pixel_model(git_folder: Path, speech_units: int = 200, eos_bias: float = 0.0) -> Wrapper:
    """``IM_Speech.Im2Speech``: git-large with the speech-unit head."""
    torch.manual_seed(2)
    model: Any = GitForCausalLM.from_pretrained(str(git_folder))
    speech_head(model, speech_units + 3, eos_bias)
    return Wrapper(model).eval()


class TimmAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.transpose(0, 1)  # (tokens, batch, width)
        out, _ = nn.functional.multi_head_attention_forward(
            seq, seq, seq, x.shape[-1], self.heads, self.qkv.weight, self.qkv.bias, None, None, False, 0.0,
            self.proj.weight, self.proj.bias, training=False, need_weights=False,
        )  # fmt: skip
        return out.transpose(0, 1)


class TimmMlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.act(self.fc1(x)))
        return out


class TimmPatchEmbed(nn.Module):
    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, width, kernel_size=(4, 4), stride=2, padding=1)


class TimmBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = TimmAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = TimmMlp(width, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class TokenViT(nn.Module):
    """SeiT's ``deit_base_token_32`` (timm names) with its GiT forward: no final norm, head unused."""

    def __init__(self, channels: int = 32, width: int = 16, depth: int = 2, heads: int = 2, mlp: int = 64) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 14 * 14 + 1, width) * 0.02)
        self.patch_embed = TimmPatchEmbed(channels, width)
        self.blocks = nn.Sequential(*(TimmBlock(width, heads, mlp) for _ in range(depth)))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, 1000)

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> BaseModelOutput:
        # theirs takes (pixel_values, output_attentions, output_hidden_states, return_dict); newer GiT passes more
        patches = self.patch_embed.proj(pixel_values)
        patches = patches.reshape(patches.shape[0], patches.shape[1], -1).permute(0, 2, 1)
        x = torch.cat((self.cls_token.expand(pixel_values.shape[0], -1, -1), patches), dim=1)
        return BaseModelOutput(last_hidden_state=self.blocks(x + self.pos_embed))


class UnitWrapper(Wrapper):
    """``IMunit_Speech.Im2Speech``: also holds the SeiT tokenizer (a module) and the codebook (a plain tensor)."""

    def __init__(self, model: Any, codebook: torch.Tensor) -> None:
        super().__init__(model)
        self.tokenizer = nn.Conv2d(3, 32, kernel_size=8, stride=8)  # stands in for SeiT's pickled encoder
        self.codebook = codebook


def unit_model(
    git_folder: Path, codebook: torch.Tensor, speech_units: int = 200, eos_bias: float = 0.0, **vit: int
) -> UnitWrapper:
    """The image-unit model as their constructor assembles it."""
    torch.manual_seed(3)
    model: Any = GitForCausalLM.from_pretrained(str(git_folder))
    seit = TokenViT(channels=codebook.shape[1], **vit)
    model.config.vision_config.hidden_size = seit.pos_embed.shape[-1]
    model.git.image_encoder.vision_model = seit
    model.git.visual_projection = type(model.git.visual_projection)(model.config)
    for layer in model.git.encoder.layer:
        layer.attention.self.image_patch_tokens = 14 * 14 + 1  # theirs: int((224 / 16) ** 2 + 1) on git-large
    speech_head(model, speech_units + 3, eos_bias)
    return UnitWrapper(model, codebook).eval()


def their_generate(wrapper: Wrapper, x: torch.Tensor, beams: int, max_length: int) -> torch.Tensor:
    """Their test-mode forward: ``generate`` with their generation config (BOS 101, EOS 102, PAD 0)."""
    config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)  # type: ignore[no-untyped-call]
    with torch.no_grad():
        out: torch.Tensor = wrapper.model.generate(
            pixel_values=x, max_length=max_length, early_stopping=True, num_beams=beams, generation_config=config
        )
    return out


def unit_inputs(wrapper: UnitWrapper, grids: np.ndarray) -> torch.Tensor:
    """Their path from token ids on: codebook rows, channels first, ``CC(28)``."""
    tokens = torch.from_numpy(grids).long()
    x = wrapper.codebook[tokens.reshape(-1, 32, 32)].permute(0, 3, 1, 2)
    top = (x.shape[-2] - 28) // 2
    left = (x.shape[-1] - 28) // 2
    return x[:, :, top : top + 28, left : left + 28]


def del_special_room(units: np.ndarray) -> np.ndarray:
    """Their inverse id shift."""
    units = units - 1
    units[np.where(units > 100)] -= 2
    return units


def their_units(output: torch.Tensor) -> list[list[int]]:
    """Their test script's reading of a ``generate`` batch (string cut at ``" 102 "``, then the shift undone)."""
    rows = [" ".join(str(u) for u in r) for r in output[:, 1:].numpy()]
    cut = [row[: row.find(f" {EOS} ")] for row in rows]
    return [
        del_special_room(np.array([int(u) for u in row.split(" ") if u != ""], dtype=np.int64)).tolist() for row in cut
    ]


def save_their_checkpoint(wrapper: Wrapper, path: Path) -> Path:
    """Their training script's checkpoint layout."""
    torch.save({"state_dict": wrapper.state_dict()}, path)
    return path
