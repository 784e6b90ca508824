"""The GPU image path on the CPU: which files go to nvJPEG, the PIL-matching resize, the option and its fallbacks.

nvJPEG itself needs a GPU and torchvision; here a stand-in decodes with PIL on the CPU, so everything around
it (the resize, the per-item fallback, rejections, ordering, the fingerprint) runs as it would on a GPU.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from im2sp_models import gpu_jpeg
from im2sp_models.gpu_jpeg import EncodedJpeg, gpu_decodable, nvjpeg_problem, pixel_batch, resize_like_pil
from im2sp_models.image_preprocess import decode_image
from im2sp_models.image_tokenizers import load_tokenizer
from im2sp_models.image_tokenizers.vit_vqgan_net import ViTVQ, ViTVQConfig
from storage.errors import ConfigError
from storage.hashing import sha256_file
from storage.reader import read_units, verify_shard
from storage.store import Store
from storage.versions import StoreVersion
from tasks.image_units import TokenizeSettings, tokenize_shard
from tasks.jobs import ShardJob
from tasks.models import TokenizerRef

TINY = ViTVQConfig(
    enc_dim=64, enc_depth=2, enc_heads=1, enc_mlp=96, dec_dim=64, dec_depth=1, dec_heads=1, dec_mlp=64, n_embed=48
)


def _jpeg(width: int, height: int, seed: int = 0, **kwargs: Any) -> bytes:
    """A photo-like JPEG: smooth colour fields plus a little noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    noisy = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "JPEG", quality=90, **kwargs)
    return buffer.getvalue()


def _save(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _pil_decode(datas: Sequence[bytes], device: str) -> list[Any]:
    """Stand-in for nvJPEG: PIL's decode as ``(3, H, W)`` uint8 tensors."""
    decoded = []
    for data in datas:
        rgb = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
        decoded.append(torch.from_numpy(rgb).permute(2, 0, 1).contiguous().to(device))
    return decoded


@pytest.mark.parametrize(("width", "height"), [(640, 480), (500, 375), (256, 256), (300, 100), (120, 90)])
def test_resize_on_the_device_matches_pils(width: int, height: int) -> None:
    """Same decoded pixels → PIL's bicubic 256 × 256 within one level, on all but a sliver of values."""
    data = _jpeg(width, height, seed=width)
    (decoded,) = _pil_decode([data], "cpu")
    ours = resize_like_pil([decoded])[0].numpy()
    theirs = decode_image(data)
    levels = np.abs(ours - theirs) * 255
    assert ours.shape == theirs.shape == (3, 256, 256) and ours.dtype == np.float32
    assert levels.max() <= 1.0 + 1e-3
    assert (levels > 0.5).mean() < 1e-3


def test_resize_groups_sizes_and_keeps_order() -> None:
    images = [_pil_decode([_jpeg(w, h, seed=i)], "cpu")[0] for i, (w, h) in enumerate([(64, 48), (80, 60), (64, 48)])]
    together = resize_like_pil(images)
    for image, row in zip(images, together, strict=True):
        torch.testing.assert_close(row, resize_like_pil([image])[0])
    assert resize_like_pil([]).shape == (0, 3, 256, 256)


def test_only_plain_upright_jpegs_go_to_the_gpu() -> None:
    photo = Image.open(io.BytesIO(_jpeg(64, 48)))
    rotated, upright = Image.Exif(), Image.Exif()
    rotated[0x0112], upright[0x0112] = 6, 1
    assert gpu_decodable(_jpeg(64, 48))
    assert gpu_decodable(_save(photo, "JPEG", exif=upright.tobytes()))
    assert gpu_decodable(_save(photo, "JPEG", progressive=True))  # nvJPEG may still refuse it: then PIL decodes
    for refused in (
        _save(photo, "JPEG", exif=rotated.tobytes()),  # PIL turns it upright
        _save(photo.convert("CMYK"), "JPEG"),
        _save(photo.convert("L"), "JPEG"),
        _save(photo, "PNG"),
        _jpeg(64, 48)[:300],  # cut short
        b"",
        b"\xff\xd8 not really a JPEG \xff\xd9",
    ):
        assert not gpu_decodable(refused)
    assert not gpu_decodable(_jpeg(64, 48), max_pixels=64 * 48 - 1)


def test_pixel_batch_falls_back_to_pil_per_item() -> None:
    """An item nvJPEG refuses is decoded by the PIL path, or rejected with its reason; order is kept."""
    good, refused, broken = _jpeg(80, 60, seed=1), _jpeg(80, 60, seed=2), _jpeg(80, 60, seed=3)
    broken_bytes = broken[:400] + b"\xff\xd9"  # passes the header check, fails PIL's full decode

    def decode(datas: Sequence[bytes], device: str) -> list[Any]:
        return [_pil_decode([d], device)[0] if d == good else None for d in datas]

    items: list[EncodedJpeg | np.ndarray] = [
        EncodedJpeg(good),
        decode_image(_save(Image.new("RGB", (9, 7), "red"), "PNG")),
        EncodedJpeg(refused),
        EncodedJpeg(broken_bytes),
    ]
    batch = pixel_batch(items, "cpu", decode_image, decode=decode)
    assert batch.kept == [0, 1, 2] and batch.decoded_on_device == 1
    assert [position for position, _ in batch.rejected] == [3]
    assert batch.rejected[0][1].startswith("undecodable image")
    np.testing.assert_array_equal(batch.pixels[1].numpy(), items[1])
    np.testing.assert_array_equal(batch.pixels[2].numpy(), decode_image(refused))
    assert np.abs(batch.pixels[0].numpy() - decode_image(good)).max() <= 1.0 / 255 + 1e-6
    assert pixel_batch([], "cpu", decode_image, decode=decode).pixels.shape == (0, 3, 256, 256)


def test_nvjpeg_problem_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "CUDA device" in (nvjpeg_problem("cpu") or "")
    if torch.cuda.is_available():
        return
    assert nvjpeg_problem("cuda") == "torch sees no CUDA device"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    if importlib.util.find_spec("torchvision") is None:
        assert "torchvision is not importable" in (nvjpeg_problem("cuda") or "")


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "vitvq.ckpt"
    torch.save({"state_dict": ViTVQ(TINY).state_dict()}, path)
    return path


def test_nvjpeg_where_it_cannot_run_is_a_config_error(checkpoint: Path) -> None:
    """Not a silent fall back to PIL: the units would be named for a decoder that did not make them."""
    with pytest.raises(ConfigError, match="decoder nvjpeg cannot run here: it decodes on a CUDA device"):
        load_tokenizer("vit-vqgan", checkpoint, device="cpu", decoder="nvjpeg")
    with pytest.raises(ConfigError, match="decoder"):
        load_tokenizer("vit-vqgan", checkpoint, device="cpu", decoder="turbojpeg")


def test_decoder_is_in_the_fingerprint_only_when_not_pil(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = load_tokenizer("vit-vqgan", checkpoint, device="cpu")
    pil = load_tokenizer("vit-vqgan", checkpoint, device="cpu", decoder="pil")
    as_before = hashlib.sha256(f"vit-vqgan\nfp32\n{sha256_file(checkpoint)}".encode()).hexdigest()[:16]
    assert default.fingerprint == pil.fingerprint == as_before  # every existing store keeps its id
    monkeypatch.setattr(gpu_jpeg, "nvjpeg_problem", lambda device: None)
    nvjpeg = load_tokenizer("vit-vqgan", checkpoint, device="cpu", decoder="nvjpeg")
    bf16 = load_tokenizer("vit-vqgan", checkpoint, device="cpu", decoder="nvjpeg", precision="bf16")
    assert len({default.fingerprint, nvjpeg.fingerprint, bf16.fingerprint}) == 3


def test_the_decoder_option_comes_from_the_config(tmp_path: Path) -> None:
    from flows.config import parse_config
    from flows.plans import tokenizer_ref

    def options(**section: Any) -> Any:
        config = parse_config(
            {"datasets": {"coco": {"kind": "coco", "root": "coco"}}, "image_tokenizer": section}, base=tmp_path
        )
        return tokenizer_ref(config, config.store.open()).options

    assert options(name="vit-vqgan", checkpoint="vq.ckpt").decoder == "pil"
    assert options(name="vit-vqgan", checkpoint="vq.ckpt", decoder="nvjpeg").decoder == "nvjpeg"
    with pytest.raises(ConfigError, match="decoder"):
        options(name="patch-vq", decoder="nvjpeg")


def _shard(root: Path) -> ShardJob:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    files: dict[str, bytes | None] = {
        "photo": _jpeg(640, 480),
        "small": _jpeg(64, 48, seed=1),
        "refused-by-nvjpeg": _jpeg(64, 48, seed=2),
        "exif-rotated": _save(photo, "JPEG", exif=exif.tobytes()),
        "cmyk": _save(photo.convert("CMYK"), "JPEG"),
        "png": _save(photo, "PNG"),
        "truncated": _jpeg(64, 48)[:200],
        "text": b"not an image\n",
        "zero-byte": b"",
        "missing": None,
    }
    items = []
    for key, data in files.items():
        if data is not None:
            (root / f"{key}.jpg").write_bytes(data)
        items.append((key, f"{key}.jpg", hashlib.sha256(data or b"").hexdigest()))
    return ShardJob("ds", "train-00000", "fp", tuple(items))


def test_tokenize_shard_with_nvjpeg_stands_in_for_pil(
    tmp_path: Path, checkpoint: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GPU path (PIL standing in for nvJPEG): same keys, same rejections and reasons, (nearly) same units."""
    job = _shard(tmp_path)
    files = {key: (tmp_path / path).read_bytes() for key, path, _ in job.items if (tmp_path / path).exists()}
    sent: list[bytes] = []

    def decode(datas: Sequence[bytes], device: str) -> list[Any]:
        sent.extend(datas)
        return [None if d == files["refused-by-nvjpeg"] else _pil_decode([d], device)[0] for d in datas]

    monkeypatch.setattr(gpu_jpeg, "nvjpeg_problem", lambda device: None)
    monkeypatch.setattr(gpu_jpeg, "nvjpeg_decode", decode)
    grids, markers = {}, {}
    for decoder in ("pil", "nvjpeg"):
        ref = TokenizerRef("vit-vqgan", str(checkpoint), "cpu", {"decoder": decoder})
        tokenize_shard(store, tmp_path, job, decoder, ref, TokenizeSettings(batch_size=4, io_workers=2))
        version = StoreVersion(store, "ds", "image-units", decoder)
        markers[decoder] = verify_shard(version, job.shard_id)
        keys, units = read_units(version, job.shard_id)
        grids[decoder] = dict(zip(keys, units, strict=True))
    pil, nvjpeg = markers["pil"], markers["nvjpeg"]
    assert nvjpeg.keys == pil.keys == ("photo", "small", "refused-by-nvjpeg", "exif-rotated", "cmyk", "png")
    assert {(r.key, r.reason) for r in nvjpeg.rejected} == {(r.key, r.reason) for r in pil.rejected}
    assert len(pil.rejected) == 4
    assert sorted(sent) == sorted(files[key] for key in ("photo", "small", "refused-by-nvjpeg"))  # only plain JPEGs
    for key in ("refused-by-nvjpeg", "exif-rotated", "cmyk", "png"):  # decoded by PIL on both paths
        np.testing.assert_array_equal(grids["nvjpeg"][key], grids["pil"][key])
    for key in ("photo", "small"):  # resized on the device: within a level of PIL, so nearly every unit agrees
        assert (grids["nvjpeg"][key] == grids["pil"][key]).mean() > 0.98
