"""Image preprocessing as the paper's tokenizer expects: upright, RGB, 256×256 bicubic, floats in [0, 1].

Decisions for inputs the paper does not discuss: EXIF orientation is applied; alpha (RGBA, LA, palette
transparency) is composited onto white, the usual page background of web images; 16-bit and 32-bit
grayscale are scaled from their full range to 8 bits, not clipped; CMYK goes through PIL's conversion.
A header declaring more than ``max_pixels`` is refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from im2sp_models.errors import ItemRejected

IMAGE_SIZE = 256
#: Largest image accepted (pixels declared in the header): 8,000 × 8,000, far above any COCO/Flickr photo.
MAX_PIXELS = 64_000_000
_WIDE_GRAY = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0}


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, compositing alpha onto white and scaling wide grayscale."""
    if image.mode in _WIDE_GRAY or image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = _WIDE_GRAY.get(image.mode) or max(float(pixels.max()), 1.0)
        gray = np.clip(pixels / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _rgb(data: bytes, max_pixels: int, to_rgb_image: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Open image bytes within the size limits, decode them fully and turn them into RGB with ``to_rgb_image``.

    Raises:
        ItemRejected: For empty, unreadable, truncated, oversized or degenerate images (reason in message).
    """
    if not data:
        raise ItemRejected("empty file: 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ItemRejected(f"image too large: header declares {width}×{height} (limit {max_pixels} pixels)")
            if width < 1 or height < 1:
                raise ItemRejected(f"degenerate image: {width}×{height}")
            image.load()
            return to_rgb_image(image)
    except ItemRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ItemRejected(f"image too large: {error}") from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        message = re.sub(r"\s*<[^<>]* at 0x[0-9a-f]+>", "", str(error))  # no object reprs: stable reasons
        raise ItemRejected(f"undecodable image: {message}") from error


def _resized(rgb: Image.Image, size: int) -> np.ndarray:
    resized = rgb.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0


def decode_image(data: bytes, *, size: int = IMAGE_SIZE, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to a ``(3, size, size)`` float32 array in [0, 1] (EXIF orientation applied).

    Raises:
        ItemRejected: For empty, unreadable, truncated, oversized or degenerate images (reason in message).
    """
    return _resized(_rgb(data, max_pixels, lambda image: to_rgb(ImageOps.exif_transpose(image))), size)


def to_uint8_image(pixels: np.ndarray) -> Image.Image:
    """Turn a ``(3, H, W)`` float array in [0, 1] back into an RGB PIL image (values clamped)."""
    array = np.clip(pixels.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(array, "RGB")


def decode_image_official(data: bytes, *, size: int = IMAGE_SIZE, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes as the paper's code does: ``(3, size, size)`` float32 in [0, 1].

    ``image_preprocess: official``. The authors' datasets call PIL's ``convert("RGB")`` on the file as stored
    (then a bicubic 256 × 256 resize and ``ToTensor``): EXIF orientation is *not* applied, and alpha is dropped,
    not composited (transparent pixels keep whatever colour they hold). Same size limits and rejections as
    :func:`decode_image`; for an upright opaque RGB image the two give the same array.

    Raises:
        ItemRejected: For empty, unreadable, truncated, oversized or degenerate images (reason in message).
    """
    return _resized(_rgb(data, max_pixels, lambda image: image.convert("RGB")), size)


#: ``image_preprocess`` choices → decoder; ``ours`` is the default (see the module docstring).
IMAGE_PREPROCESS = {"ours": decode_image, "official": decode_image_official}
