from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from im2sp_models.errors import CheckpointError, ItemRejected, NotEnoughDataError, UnknownModelError
from im2sp_models.image_preprocess import decode_image
from im2sp_models.image_tokenizers import load_tokenizer
from im2sp_models.image_tokenizers.patch_vq import PatchVQ, PatchVQConfig, from_patches, to_patches
from im2sp_models.image_tokenizers.vit_vqgan_net import ViTVQ, ViTVQConfig
from storage.errors import ConfigError

TINY = ViTVQConfig(
    enc_dim=64, enc_depth=2, enc_heads=1, enc_mlp=96, dec_dim=128, dec_depth=1, dec_heads=2, dec_mlp=64, n_embed=48
)


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 3, 256, 256), dtype=np.float32)


@pytest.fixture
def lightning_ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    state = ViTVQ(TINY).state_dict()
    state["loss.discriminator.blocks.0.weight"] = torch.zeros(3)  # training-only weights are ignored
    path = tmp_path / "vitvq.ckpt"
    torch.save({"epoch": 3, "global_step": 1000, "state_dict": state}, path)
    return path


def test_vit_vqgan_lightning_checkpoint_round_trip(lightning_ckpt: Path) -> None:
    tokenizer = load_tokenizer("vit-vqgan", lightning_ckpt, device="cpu")
    assert tokenizer.codebook_size == 48 and tokenizer.can_decode
    units = tokenizer.encode(_images(2))
    assert units.shape == (2, 32, 32) and units.min() >= 0 and units.max() < 48
    pixels = tokenizer.decode(units)
    assert pixels.shape == (2, 3, 256, 256) and pixels.min() >= 0.0 and pixels.max() <= 1.0
    assert tokenizer.codebook_vectors().shape == (48, 32)
    np.testing.assert_allclose(np.linalg.norm(tokenizer.codebook_vectors(), axis=1), 1.0, rtol=1e-5)


def test_vit_vqgan_safetensors_gives_same_units(lightning_ckpt: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = torch.load(lightning_ckpt, weights_only=True)["state_dict"]
    save_file({k: v.contiguous() for k, v in state.items() if not k.startswith("loss.")}, tmp_path / "m.safetensors")
    images = _images(2, seed=3)
    a = load_tokenizer("vit-vqgan", lightning_ckpt, device="cpu")
    b = load_tokenizer("vit-vqgan", tmp_path / "m.safetensors", device="cpu")
    np.testing.assert_array_equal(a.encode(images), b.encode(images))
    assert a.fingerprint != b.fingerprint  # named by the checkpoint bytes


def test_vit_vqgan_rejects_foreign_checkpoints(tmp_path: Path) -> None:
    torch.save({"state_dict": {"model.weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="missing"):
        load_tokenizer("vit-vqgan", tmp_path / "other.ckpt", device="cpu")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_tokenizer("vit-vqgan", tmp_path / "nope", device="cpu")


def test_seit_pickles_are_refused_unless_trusted(tmp_path: Path) -> None:
    folder = tmp_path / "seit"
    folder.mkdir()
    encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 8, 8), torch.nn.Flatten(2))
    torch.save(torch.nn.Sequential(encoder, _Transpose()), folder / "tokenizer.ckpt")
    torch.save(torch.randn(391, 32), folder / "codebook.ckpt")
    with pytest.raises(CheckpointError, match="trust_pickle"):
        load_tokenizer("vit-vqgan", folder, device="cpu")
    tokenizer = load_tokenizer("vit-vqgan", folder, device="cpu", trust_pickle=True)
    assert tokenizer.codebook_size == 391 and not tokenizer.can_decode
    units = tokenizer.encode(_images(1))
    assert units.shape == (1, 32, 32) and units.max() < 391


class _Transpose(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def test_unknown_tokenizer() -> None:
    with pytest.raises(UnknownModelError, match="patch-vq"):
        load_tokenizer("vqgan-9000", Path())


def test_patch_vq_train_save_load_encode_decode(tmp_path: Path) -> None:
    images = _images(3)
    tokenizer = PatchVQ.train(list(images), PatchVQConfig(codebook_size=64), seed=1, niter=5)
    tokenizer.save(tmp_path / "cb")
    loaded = load_tokenizer("patch-vq", tmp_path / "cb", device="cpu")
    assert loaded.fingerprint == tokenizer.fingerprint
    units = loaded.encode(images)
    assert units.shape == (3, 32, 32) and units.max() < 64
    np.testing.assert_array_equal(loaded.decode(units), from_patches(tokenizer.codebook[units.reshape(-1)], 3, 8, 32))
    with pytest.raises(NotEnoughDataError, match="need ≥"):
        PatchVQ.train(list(images[:1]), PatchVQConfig(codebook_size=8192))


def test_patches_round_trip() -> None:
    images = _images(2)
    np.testing.assert_array_equal(from_patches(to_patches(images, 8), 2, 8, 32), images)


def _encoded(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_preprocessing_modes_and_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    tall = Image.new("RGB", (20, 10), "black")
    tall.paste((255, 255, 255), (0, 0, 10, 10))  # left half white; displayed rotated, it becomes the top half
    upright = decode_image(_encoded(tall, "JPEG", exif=exif.tobytes(), quality=95))
    assert upright[:, :64].mean() > 0.9 and upright[:, -64:].mean() < 0.1
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([255, 0, 0] * 256)
    assert decode_image(_encoded(palette, "PNG", transparency=0)).min() == 1.0  # transparent → white
    wide = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert decode_image(_encoded(wide, "PNG")).min() == 1.0  # 16-bit white stays white, not clipped
    cmyk = decode_image(_encoded(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG"))
    assert cmyk.shape == (3, 256, 256) and cmyk.min() > 0.9
    assert decode_image(_encoded(Image.new("RGB", (1, 1), "red"), "PNG"))[0].min() == 1.0


@pytest.mark.parametrize(("data", "reason"), [(b"", "empty file"), (b"not an image", "undecodable image")])
def test_preprocessing_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(ItemRejected, match=reason):
        decode_image(data)


def test_vit_vqgan_precision_is_an_option_in_the_fingerprint(lightning_ckpt: Path) -> None:
    """fp32 by default (as the official code tokenizes); bf16 runs under autocast and is named apart."""
    default = load_tokenizer("vit-vqgan", lightning_ckpt, device="cpu")
    fp32 = load_tokenizer("vit-vqgan", lightning_ckpt, device="cpu", precision="fp32")
    bf16 = load_tokenizer("vit-vqgan", lightning_ckpt, device="cpu", precision="bf16")
    assert default.fingerprint == fp32.fingerprint != bf16.fingerprint
    assert (default.precision, bf16.precision) == ("fp32", "bf16")  # type: ignore[attr-defined]
    images = _images(2, seed=5)
    net = ViTVQ(TINY)
    net.load_state_dict({k: v for k, v in torch.load(lightning_ckpt)["state_dict"].items() if "loss." not in k})
    net.eval()
    with torch.no_grad():
        exact = net.encode_codes(torch.from_numpy(images)).reshape(2, 32, 32).numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded = net.encode_codes(torch.from_numpy(images)).reshape(2, 32, 32).numpy()
    np.testing.assert_array_equal(default.encode(images), exact)
    np.testing.assert_array_equal(bf16.encode(images), rounded)
    assert (rounded != exact).any()  # bf16 codes are not the fp32 codes: they must not share a version id


def test_vit_vqgan_encodes_tensors_as_arrays(lightning_ckpt: Path) -> None:
    """``encode_pixels`` (pixels already on the device, as the nvJPEG path has them) gives ``encode``'s units."""
    from im2sp_models.image_tokenizers.vit_vqgan import ViTVQGAN

    tokenizer = load_tokenizer("vit-vqgan", lightning_ckpt, device="cpu", forward_batch=2)
    assert isinstance(tokenizer, ViTVQGAN) and tokenizer.decoder == "pil"
    images = _images(5, seed=6)  # three forward batches, the last one short
    units = tokenizer.encode(images)
    np.testing.assert_array_equal(tokenizer.encode_pixels(torch.from_numpy(images)), units)
    np.testing.assert_array_equal(np.concatenate([tokenizer.encode(images[i : i + 1]) for i in range(5)]), units)
    assert tokenizer.encode(images[:0]).shape == (0, 32, 32)


def test_vit_vqgan_refuses_unknown_precision(lightning_ckpt: Path) -> None:
    with pytest.raises(ConfigError, match="precision"):
        load_tokenizer("vit-vqgan", lightning_ckpt, device="cpu", precision="fp16")


def test_fp32_turns_tf32_off_on_cuda() -> None:
    from im2sp_models.device import compute_precision

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        with compute_precision("cuda", "fp32"):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        with compute_precision("cpu", "bf16"):
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True
