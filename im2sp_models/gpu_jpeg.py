"""JPEG decoding on the GPU (nvJPEG, through torchvision) and a resize on the device that matches PIL's.

The ``decoder: nvjpeg`` option of ``vit-vqgan``. Only plain JPEGs go to the GPU: 3-component YCbCr files
(no Adobe transform marker, no components named R, G, B), upright (no EXIF orientation other than 1),
within the pixel limit, ending with the end-of-image marker (a file cut short does not). Every other file,
and any file nvJPEG refuses, takes the usual PIL path (``im2sp_models.image_preprocess``), so odd images
and rejections are as before. For a plain JPEG both preprocessings (``ours``, ``official``) give the same
pixels, so the decoder and ``image_preprocess`` are independent choices.

The resize does what PIL's bicubic ``resize`` does on 8-bit images: an antialiased bicubic (a = -0.5) pass
along the width, rounded to 8 bits, then one along the height, rounded again. On the same decoded pixels
it matches PIL on all but ~0.01 % of values (off by one level). nvJPEG's IDCT and chroma upsampling
differ from libjpeg-turbo's by a level or two here and there, so units can differ from the PIL path's: the
option is part of the tokenizer's fingerprint.

torchvision is an optional dependency, imported only here and only when the option is chosen (PyPI's
torchvision wheels pin one torch build; install the one that matches yours on GPU hosts).
"""

from __future__ import annotations

import importlib
import io
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from im2sp_models.errors import ItemRejected
from im2sp_models.image_preprocess import IMAGE_SIZE, MAX_PIXELS

#: The EXIF orientation tag.
_ORIENTATION = 0x0112
#: The JPEG end-of-image marker.
_EOI = b"\xff\xd9"


@runtime_checkable
class DeviceDecoding(Protocol):
    """A tokenizer that can take pixels decoded on its device (``vit-vqgan``); it does when ``decoder`` is nvjpeg."""

    #: ``pil`` or ``nvjpeg``.
    decoder: str
    #: Where it runs (and nvJPEG decodes).
    device: str

    def encode_pixels(self, pixels: Any) -> np.ndarray:
        """Float32 ``(B, 3, 256, 256)`` tensor in [0, 1], on any device → ``(B, 32, 32)`` units."""


@dataclass(frozen=True)
class EncodedJpeg:
    """A file's bytes, checked to be a plain JPEG that the GPU decodes (:func:`gpu_decodable`)."""

    data: bytes


def nvjpeg_problem(device: str) -> str | None:
    """Why JPEGs cannot be decoded with nvJPEG on ``device``, or None when they can."""
    if not device.startswith("cuda"):
        return f"it decodes on a CUDA device, and this model runs on {device!r}"
    import torch

    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    try:
        importlib.import_module("torchvision.io")
    except ImportError as error:
        return f"torchvision is not importable ({error}); install the torchvision build that matches torch"
    return None


def gpu_decodable(data: bytes, *, max_pixels: int = MAX_PIXELS) -> bool:
    """Whether a file is a plain JPEG for the GPU path (headers only: nothing is decoded).

    False for anything else (PNG, CMYK or grayscale JPEG, Adobe-transform JPEG, EXIF-rotated, oversized,
    cut short, unreadable): those take the PIL path, which decodes or rejects them as it always has.
    """
    if not data.startswith(b"\xff\xd8") or not data.endswith(_EOI):
        return False
    try:
        with warnings.catch_warnings():  # an oversized header is refused below; PIL's warning would be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            return (
                image.format == "JPEG"
                and image.mode == "RGB"
                and "adobe" not in image.info
                and [layer[0] for layer in getattr(image, "layer", [])] != list(b"RGB")  # RGB, not YCbCr
                and 0 < width * height <= max_pixels
                and image.getexif().get(_ORIENTATION, 1) == 1
            )
    except Exception:  # any failure to read the headers means: let the PIL path decide, as before
        return False


def resize_like_pil(images: Sequence[Any], size: int = IMAGE_SIZE) -> Any:
    """``(3, H, W)`` uint8 tensors (any sizes, one device) → ``(N, 3, size, size)`` float32 in [0, 1].

    PIL's bicubic resize of 8-bit images, on the tensors' device: width first, then height, each pass an
    antialiased bicubic rounded to 8 bits. Images of one size are resized together.
    """
    import torch
    from torch.nn import functional

    if not images:
        return torch.zeros((0, 3, size, size))
    by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, image in enumerate(images):
        by_shape[(int(image.shape[1]), int(image.shape[2]))].append(index)
    out = torch.empty((len(images), 3, size, size), device=images[0].device)
    for (height, _), indices in by_shape.items():
        batch = torch.stack([images[i] for i in indices]).float()
        for target in ((height, size), (size, size)):
            batch = functional.interpolate(batch, size=target, mode="bicubic", align_corners=False, antialias=True)
            batch = batch.round_().clamp_(0.0, 255.0)
        out[indices] = batch / 255.0
    return out


def nvjpeg_decode(datas: Sequence[bytes], device: str) -> list[Any]:
    """Decode JPEG bytes to ``(3, H, W)`` uint8 RGB tensors on ``device`` with nvJPEG (None where it fails).

    One batched call; should it fail, each file alone, so one file nvJPEG refuses costs only itself.
    """
    import torch

    vision_io: Any = importlib.import_module("torchvision.io")
    rgb = vision_io.ImageReadMode.RGB
    encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
    try:
        return list(vision_io.decode_jpeg(encoded, mode=rgb, device=device))
    except RuntimeError:
        decoded: list[Any] = []
        for tensor in encoded:
            try:
                decoded.append(vision_io.decode_jpeg(tensor, mode=rgb, device=device))
            except RuntimeError:
                decoded.append(None)
        return decoded


@dataclass(frozen=True)
class PixelBatch:
    """Pixels of a batch's items on the device, and what happened to the rest.

    Attributes:
        pixels: ``(len(kept), 3, 256, 256)`` float32 in [0, 1], in the order of ``kept``.
        kept: Positions (in the batch) of the items that have pixels, ascending.
        rejected: ``(position, reason)`` of the items the PIL path rejected after nvJPEG refused them.
        decoded_on_device: How many items nvJPEG decoded.
    """

    pixels: Any
    kept: list[int]
    rejected: list[tuple[int, str]]
    decoded_on_device: int


def pixel_batch(
    items: Sequence[EncodedJpeg | np.ndarray],
    device: str,
    fallback: Callable[[bytes], np.ndarray],
    decode: Callable[[Sequence[bytes], str], list[Any]] | None = None,
) -> PixelBatch:
    """Pixels on ``device`` for a batch of plain JPEGs (decoded there) and images the PIL path decoded already.

    Args:
        items: Per item, an :class:`EncodedJpeg` or the ``(3, 256, 256)`` pixels of the PIL path.
        device: Where the pixels go (and where nvJPEG decodes).
        fallback: The PIL path, for a JPEG that ``decode`` refuses (raises ``ItemRejected`` to reject it).
        decode: JPEG bytes → ``(3, H, W)`` uint8 tensors on ``device``, None where it fails (default:
            :func:`nvjpeg_decode`).
    """
    import torch

    decode = decode or nvjpeg_decode
    jpegs = [(i, item.data) for i, item in enumerate(items) if isinstance(item, EncodedJpeg)]
    decoded = decode([data for _, data in jpegs], device) if jpegs else []
    on_device = {i: image for (i, _), image in zip(jpegs, decoded, strict=True) if image is not None}
    resized = dict(zip(on_device, resize_like_pil(list(on_device.values())), strict=True))
    rows, kept, rejected = [], [], []
    for position, item in enumerate(items):
        if position in resized:
            rows.append(resized[position])
            kept.append(position)
            continue
        try:
            pixels = fallback(item.data) if isinstance(item, EncodedJpeg) else item
        except ItemRejected as verdict:
            rejected.append((position, str(verdict)))
            continue
        rows.append(torch.from_numpy(np.ascontiguousarray(pixels)).to(device))
        kept.append(position)
    stacked = torch.stack(rows).to(device) if rows else torch.zeros((0, 3, IMAGE_SIZE, IMAGE_SIZE), device=device)
    return PixelBatch(stacked, kept, rejected, len(on_device))
