from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import GitConfig, GitForCausalLM

from im2sp_models.errors import CheckpointError
from im2sp_models.unit_git import (
    BOS_ID,
    EOS_ID,
    IMAGE_TOKENS,
    PAD_ID,
    build_model,
    crop_grids,
    from_git_checkpoint,
    ids_to_speech_units,
    load_model,
    save_model,
    speech_units_to_ids,
    text_logits,
)

TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "vision_config": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2},
}


def _batch(units: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    sequences = [speech_units_to_ids(np.array(u)) for u in units]
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), PAD_ID, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.from_numpy(sequence)
    return ids, (ids != PAD_ID).long()


@given(st.lists(st.integers(0, 199), max_size=50))
def test_speech_unit_ids_round_trip(units: list[int]) -> None:
    ids = speech_units_to_ids(np.array(units, dtype=np.int64))
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and (ids[1:-1] >= 3).all()
    np.testing.assert_array_equal(ids_to_speech_units(np.concatenate([ids, [PAD_ID, PAD_ID]])), units)


def test_crops_are_centred_or_random() -> None:
    grids = torch.arange(2 * 32 * 32).reshape(2, 32, 32)
    centre = crop_grids(grids, training=False)
    assert centre.shape == (2, 28, 28) and int(centre[0, 0, 0]) == 2 * 32 + 2
    generator = torch.Generator().manual_seed(0)
    assert crop_grids(grids, training=True, generator=generator).shape == (2, 28, 28)


def test_git_checkpoint_initialises_decoder_and_vision_blocks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    git: Any = GitForCausalLM(GitConfig(**TINY))
    git.save_pretrained(tmp_path / "git")
    vectors = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    model, report = from_git_checkpoint(
        tmp_path / "git", image_codebook_size=16, speech_units=20, codebook_vectors=vectors
    )
    loaded, skipped = set(report["loaded"]), set(report["skipped"])
    assert "git.encoder.layer.0.attention.self.query.weight" in loaded
    assert "git.visual_projection.visual_projection.0.weight" in loaded
    assert "git.image_encoder.vision_model.encoder.layers.1.mlp.fc1.weight" in loaded
    assert "git.image_encoder.vision_model.embeddings.position_embedding.weight" in loaded
    assert "git.embeddings.word_embeddings.weight" in skipped and "output.weight" in skipped
    assert "git.image_encoder.vision_model.embeddings.patch_embedding.weight" in skipped
    torch.testing.assert_close(
        model.git.encoder.layer[1].output.dense.weight, git.git.encoder.layer[1].output.dense.weight
    )
    embedding = model.git.image_encoder.vision_model.embeddings.unit_embedding.weight
    np.testing.assert_array_equal(embedding.detach().numpy(), vectors)
    assert model.config.vocab_size == 23 and model.config.eos_token_id == EOS_ID
    with pytest.raises(CheckpointError, match="save_pretrained"):
        from_git_checkpoint(tmp_path / "none", image_codebook_size=16, speech_units=20)


def test_a_tiny_model_overfits_a_batch_generates_it_and_round_trips(tmp_path: Path) -> None:
    model = build_model(GitConfig(**TINY), image_codebook_size=16, speech_units=20, seed=0)
    grids = torch.randint(0, 16, (2, 32, 32), generator=torch.Generator().manual_seed(1))
    pixels = grids[:, None].float()
    targets = [[4, 9, 1, 17, 5], [12, 3, 3, 8]]
    ids, mask = _batch(targets)
    labels = ids.masked_fill(mask == 0, -100)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(200):
        output = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels)
        optimiser.zero_grad()
        output.loss.backward()
        optimiser.step()
        losses.append(float(output.loss.detach()))
    assert losses[-1] < 0.05 < losses[0]
    assert output.logits.shape == (2, IMAGE_TOKENS + ids.shape[1], 23)
    assert text_logits(output.logits).shape == (2, ids.shape[1], 23)
    model.eval()
    with torch.no_grad():
        generated = model.generate(
            pixel_values=pixels, input_ids=torch.full((2, 1), BOS_ID), max_new_tokens=8, do_sample=False
        )
    assert [ids_to_speech_units(row.numpy()).tolist() for row in generated] == targets
    from tasks.evaluate import generate

    for beams in (1, 3):  # greedy (the paper) and beam search, as evaluate-im2sp calls them
        assert [u.tolist() for u in generate(model, grids.numpy(), beams=beams, max_units=8)] == targets

    save_model(model, tmp_path / "model")
    again = load_model(tmp_path / "model")
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits
        torch.testing.assert_close(again(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits, expected)
    with pytest.raises(ValueError, match="outside"):
        model(input_ids=ids, pixel_values=torch.full((2, 1, 32, 32), 16.0))
