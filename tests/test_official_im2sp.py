"""The authors' released Im2Sp models: parity with their construction and test scripts, refusals, preprocessing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from im2sp_models.errors import CheckpointError
from im2sp_models.im2sp_kinds import IM2SP_MODELS, im2sp_model_names, load_im2sp_model
from im2sp_models.image_preprocess import IMAGE_PREPROCESS, decode_image, decode_image_official
from im2sp_models.official_format import tokens_to_units, unit_to_token
from im2sp_models.official_pixels import ClipPreprocess
from tests import official_reference as ref

MAX_LENGTH = 24
EOS_BIAS = 0.6  # rows of this tiny model then end anywhere: at once, midway, or not before MAX_LENGTH
UNIT_EOS_BIAS = 1.4  # the same for the image-unit model (one row ends with EOS as its 24th token)


@pytest.fixture(scope="module")
def git_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ref.tiny_git_folder(tmp_path_factory.mktemp("git-large"))


def _png(image: Image.Image, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def _photos(count: int, size: tuple[int, int]) -> list[bytes]:
    rng = np.random.default_rng(7)
    return [_png(Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8))) for _ in range(count)]


def _kept(units: list[list[int]]) -> list[list[int]]:
    # ids their script would write as -1 (a PAD kept by the string cut) are not units: ours drops them
    return [[u for u in row if 0 <= u < 200] for row in units]


@pytest.mark.parametrize("beams", [1, 3])
def test_pixel_model_generates_as_their_code(git_folder: Path, tmp_path: Path, beams: int) -> None:
    theirs = ref.pixel_model(git_folder, eos_bias=EOS_BIAS)
    checkpoint = ref.save_their_checkpoint(theirs, tmp_path / "Im_to_Speech.ckpt")
    ours = {
        mode: load_im2sp_model(
            "official-im2sp", checkpoint, device="cpu", git_config=git_folder, max_length=MAX_LENGTH, postprocess=mode
        )
        for mode in ("as-released", "clean")
    }
    images = _photos(8, (40, 33))
    # their processor for this tiny GiT: CLIP's, shorter side and crop at the vision tower's 32
    processor = ClipPreprocess(size=32, crop=32)
    pixels = np.stack([processor(data) for data in images])
    out = ref.their_generate(theirs, torch.from_numpy(pixels), beams, MAX_LENGTH)
    assert ours["as-released"].generate(pixels, beams=beams) == _kept(ref.their_units(out))
    clean = ours["clean"].generate(pixels, beams=beams)
    expected = [[int(t) for t in row[1:]] for row in out]
    expected = [row[: row.index(102)] if 102 in row else row for row in expected]
    assert clean == _kept([ref.del_special_room(np.array(row, dtype=np.int64)).tolist() for row in expected])
    assert all(0 <= u < 200 for row in clean for u in row)
    assert len({tuple(row) for row in clean}) > 1  # the images matter: the comparison is not vacuous


@pytest.mark.parametrize("beams", [1, 3])
def test_unit_model_generates_as_their_code(git_folder: Path, tmp_path: Path, beams: int) -> None:
    torch.manual_seed(4)
    codebook = torch.randn(64, 32)
    theirs = ref.unit_model(git_folder, codebook, eos_bias=UNIT_EOS_BIAS)
    checkpoint = ref.save_their_checkpoint(theirs, tmp_path / "Im_unit_to_Speech.ckpt")
    torch.save(codebook, tmp_path / "codebook.ckpt")
    ours = load_im2sp_model(
        "official-im2sp-unit",
        checkpoint,
        device="cpu",
        git_config=git_folder,
        codebook=tmp_path / "codebook.ckpt",
        seit_heads=2,
        max_length=MAX_LENGTH,
        postprocess="as-released",
    )
    grids = np.random.default_rng(3).integers(0, 64, (8, 32, 32))
    out = ref.their_generate(theirs, ref.unit_inputs(theirs, grids), beams, MAX_LENGTH)
    generated = ours.generate(grids, beams=beams)
    assert generated == _kept(ref.their_units(out))
    assert len({tuple(row) for row in generated}) > 1


def test_a_renamed_key_is_refused_with_both_names(git_folder: Path, tmp_path: Path) -> None:
    state = ref.pixel_model(git_folder).state_dict()
    old = "model.git.encoder.layer.0.attention.self.query.weight"
    state["model.git.encoder.layer.0.attention.self.q.weight"] = state.pop(old)
    torch.save({"state_dict": state}, tmp_path / "renamed.ckpt")
    with pytest.raises(CheckpointError) as refused:
        load_im2sp_model("official-im2sp", tmp_path / "renamed.ckpt", device="cpu", git_config=git_folder)
    message = str(refused.value)
    assert "unknown keys: model.git.encoder.layer.0.attention.self.q.weight" in message
    assert f"missing keys: {old}" in message


def test_each_kind_refuses_the_other_models_checkpoint(git_folder: Path, tmp_path: Path) -> None:
    pixel = ref.save_their_checkpoint(ref.pixel_model(git_folder), tmp_path / "pixel.ckpt")
    unit = ref.save_their_checkpoint(ref.unit_model(git_folder, torch.randn(8, 32)), tmp_path / "unit.ckpt")
    with pytest.raises(CheckpointError, match="not the released image-unit model"):
        load_im2sp_model("official-im2sp-unit", pixel, device="cpu", git_config=git_folder, seit_heads=2)
    with pytest.raises(CheckpointError, match=r"unknown keys: .*vision_model\.blocks\.0"):
        load_im2sp_model("official-im2sp", unit, device="cpu", git_config=git_folder)
    with pytest.raises(CheckpointError, match="needs git_config"):
        load_im2sp_model("official-im2sp", pixel, device="cpu")
    torch.save(torch.randn(2, 2), tmp_path / "bare.ckpt")
    with pytest.raises(CheckpointError, match="state_dict"):
        load_im2sp_model("official-im2sp", tmp_path / "bare.ckpt", device="cpu", git_config=git_folder)


def test_ids_and_the_string_cut_of_their_test_scripts() -> None:
    assert [unit_to_token(u) for u in (0, 99, 100, 101, 199)] == [1, 100, 101, 104, 202]
    rows = [
        [101, 5, 102, 0, 0],  # EOS with a token after it: cut there
        [101, 7, 8, 9, 102],  # the longest row's EOS is its last token: their cut drops one character ("10")
        [101, 102, 0, 0, 0],  # EOS first: not cut at all, PAD kept (as -1, dropped here)
        [101, 4, 0, 104, 157],  # no EOS (max length): "157" loses its last digit
    ]
    assert tokens_to_units(rows, 200, "as-released") == [[4], [6, 7, 8, 9], [99], [3, 101, 14]]
    assert tokens_to_units(rows, 200, "clean") == [[4], [6, 7, 8], [], [3, 101, 154]]


def test_the_clip_preprocessing_matches_transformers_processor() -> None:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    for data in _photos(2, (300, 257)) + _photos(1, (230, 411)):
        expected = processor(images=Image.open(io.BytesIO(data)).convert("RGB"), return_tensors="np")["pixel_values"]
        np.testing.assert_allclose(ClipPreprocess()(data), expected[0], atol=1e-6, rtol=0)


def test_clip_preprocessing_reads_a_local_preprocessor_config(tmp_path: Path) -> None:
    (tmp_path / "preprocessor_config.json").write_text('{"size": {"shortest_edge": 64}, "crop_size": 48}')
    assert ClipPreprocess.from_folder(tmp_path) == ClipPreprocess(size=64, crop=48)
    assert ClipPreprocess.from_folder(None) == ClipPreprocess()
    assert ClipPreprocess.from_folder(tmp_path)(_photos(1, (80, 70))[0]).shape == (3, 48, 48)


def test_official_preprocessing_differs_from_ours_only_where_documented() -> None:
    plain = _photos(1, (20, 12))[0]
    np.testing.assert_array_equal(decode_image(plain), decode_image_official(plain))
    # EXIF orientation 6 (rotate 90°): ours turns the photo upright, theirs reads the pixels as stored
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.open(io.BytesIO(plain)).save(buffer, format="JPEG", exif=exif.tobytes())
    rotated = buffer.getvalue()
    stored = np.asarray(Image.open(io.BytesIO(rotated)).convert("RGB").resize((256, 256), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(decode_image_official(rotated), stored.transpose(2, 0, 1) / 255.0, atol=1e-7)
    assert not np.allclose(decode_image(rotated), decode_image_official(rotated))
    # transparent red: ours composites onto white, theirs drops alpha and keeps the red
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    ours, theirs = decode_image(_png(rgba)), decode_image_official(_png(rgba))
    assert np.allclose(ours, 1.0)
    assert np.allclose(theirs[0], 1.0) and np.allclose(theirs[1:], 0.0)
    assert IMAGE_PREPROCESS["official"] is decode_image_official and IMAGE_PREPROCESS["ours"] is decode_image


def test_the_kinds_registry_lists_ours_and_the_released_models() -> None:
    assert im2sp_model_names() == ["im2sp", "official-im2sp", "official-im2sp-unit"]
    reads = {name: entry.reads for name, entry in IM2SP_MODELS.entries().items()}
    assert reads == {"im2sp": "image-units", "official-im2sp": "images", "official-im2sp-unit": "image-units"}
    settings: Any = IM2SP_MODELS.settings("official-im2sp-unit", {"beams": 2})
    assert (settings.beams, settings.max_length, settings.postprocess) == (2, 512, "clean")


def test_the_im2sp_kind_wraps_the_unit_git_this_project_trains(tmp_path: Path) -> None:
    from transformers import GitConfig

    from im2sp_models.evaluation import generate
    from im2sp_models.unit_git import build_model, save_model

    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    base = GitConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vision_config=vision
    )
    save_model(build_model(base, image_codebook_size=16, speech_units=20), tmp_path / "model")
    kind = load_im2sp_model("im2sp", tmp_path / "model", device="cpu", max_units=6)
    grids = np.random.default_rng(0).integers(0, 16, (2, 32, 32))
    expected = [row.tolist() for row in generate(kind.model, grids, beams=1, max_units=6)]  # type: ignore[attr-defined]
    assert kind.generate(grids) == expected
    assert kind.speech_units == 20 and kind.fingerprint != ""
    with pytest.raises(CheckpointError, match="model folder"):
        load_im2sp_model("im2sp", tmp_path / "missing", device="cpu")


def test_the_unit_model_reads_only_units_tokenized_as_the_authors_did(git_folder: Path, tmp_path: Path) -> None:
    from im2sp_models.official_im2sp_unit import tokenizer_provenance

    codebook = torch.randn(8, 32)
    unit = ref.save_their_checkpoint(ref.unit_model(git_folder, codebook), tmp_path / "unit.ckpt")
    seit = tmp_path / "seit"
    seit.mkdir()
    torch.save(codebook, seit / "codebook.ckpt")
    (seit / "tokenizer.ckpt").write_bytes(b"a pickled encoder")
    model: Any = load_im2sp_model(
        "official-im2sp-unit", unit, device="cpu", git_config=git_folder, codebook=seit / "codebook.ckpt", seit_heads=2
    )
    theirs = {
        "tokenizer": "vit-vqgan",
        "image_preprocess": "official",
        "provenance": tokenizer_provenance("vit-vqgan", str(seit), "fp32"),
    }
    assert model.image_units_problem(theirs) is None
    other = tmp_path / "other"
    other.mkdir()
    torch.save(torch.randn(8, 32), other / "codebook.ckpt")
    (other / "tokenizer.ckpt").write_bytes(b"another encoder")
    refused = {
        "they are patch-vq units": {**theirs, "tokenizer": "patch-vq", "provenance": {"seit_codebook_sha256": None}},
        "provenance is unknown": {key: value for key, value in theirs.items() if key != "provenance"},
        "not SeiT's": {**theirs, "provenance": tokenizer_provenance("vit-vqgan", str(tmp_path / "v.ckpt"), "fp32")},
        "another SeiT codebook": {**theirs, "provenance": tokenizer_provenance("vit-vqgan", str(other), "fp32")},
        "image_preprocess: ours": {key: value for key, value in theirs.items() if key != "image_preprocess"},
        "in bf16": {**theirs, "provenance": tokenizer_provenance("vit-vqgan", str(seit), "bf16")},
    }
    for why, produced_by in refused.items():
        problem = model.image_units_problem(produced_by)
        assert problem is not None and why in problem and "image_preprocess: official" in problem, (why, problem)
    assert tokenizer_provenance("patch-vq", str(seit), "fp32")["seit_codebook_sha256"] is None
