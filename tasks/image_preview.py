"""Reconstruction check: decode stored units back to pixels, measure PSNR, write a preview grid PNG."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from prefect import task

from im2sp_models.image_preprocess import IMAGE_PREPROCESS, to_uint8_image
from storage.kinds import IMAGE_UNITS
from storage.reader import read_units
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from tasks.models import TokenizerRef, tokenizer_for

THUMB = 128
#: The most bytes the inline copy of a preview may take (before base64): a markdown artifact carries it, and
#: the Prefect UI shows an inline image where it would show only a path to the full PNG.
INLINE_PREVIEW_BYTES = 100_000
_INLINE_QUALITIES = (85, 70, 55, 40)
_INLINE_MIN_SIDE = 32


@dataclass(frozen=True)
class ReconstructionReport:
    """PSNR of decoded units against the preprocessed originals, and where the preview went."""

    dataset: str
    items: int
    psnr_mean: float
    psnr_min: float
    preview_key: str


def psnr(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (capped at 99 dB for identical images)."""
    mse = float(np.mean((original.astype(np.float64) - reconstruction.astype(np.float64)) ** 2))
    return 99.0 if mse <= 1e-10 else min(99.0, 10.0 * math.log10(1.0 / mse))


@dataclass(frozen=True)
class StoredUnits:
    """A dataset's image-units version to sample for the check: its shards in order and each item's image path.

    Attributes:
        dataset: The dataset.
        version_id: The image-units version.
        shard_ids: Its shards, in plan order (the sample is taken from the first ones).
        paths: Each item's image, relative to the dataset's root.
    """

    dataset: str
    version_id: str
    shard_ids: tuple[str, ...]
    paths: dict[str, str]


def check_reconstruction(
    store: Store, root: Path, units: StoredUnits, ref: TokenizerRef, *, sample: int = 8, preprocess: str = "ours"
) -> ReconstructionReport | None:
    """Decode the first ``sample`` stored items (a fixed sample) and compare them with their sources.

    The sources are decoded as tokenize-images decoded them (``preprocess``: a key of ``IMAGE_PREPROCESS``).

    Returns None when the tokenizer cannot decode or nothing was stored.
    """
    dataset, version_id, paths = units.dataset, units.version_id, units.paths
    tokenizer = tokenizer_for(ref)
    if not tokenizer.can_decode:
        return None
    version = StoreVersion(store, dataset, IMAGE_UNITS, version_id)
    keys: list[str] = []
    grids: list[np.ndarray] = []
    for shard_id in units.shard_ids:
        shard_keys, stored = read_units(version, shard_id)
        take = sample - len(keys)
        keys += shard_keys[:take]
        grids.append(stored[:take])
        if len(keys) >= sample:
            break
    if not keys:
        return None
    decode = IMAGE_PREPROCESS[preprocess]
    originals = np.stack([decode((root / paths[key]).read_bytes()) for key in keys])
    decoded = tokenizer.decode(np.concatenate(grids))
    scores = [psnr(a, b) for a, b in zip(originals, decoded, strict=True)]
    preview = Image.new("RGB", (2 * THUMB, THUMB * len(keys)), "white")
    for row, (original, reconstruction) in enumerate(zip(originals, decoded, strict=True)):
        preview.paste(to_uint8_image(original).resize((THUMB, THUMB)), (0, row * THUMB))
        preview.paste(to_uint8_image(reconstruction).resize((THUMB, THUMB)), (THUMB, row * THUMB))
    buffer = io.BytesIO()
    preview.save(buffer, "PNG", optimize=True)
    key = f"reports/tokenize-images/{dataset}-{version_id}-preview.png"
    store.write_bytes(key, buffer.getvalue())
    return ReconstructionReport(dataset, len(keys), float(np.mean(scores)), float(np.min(scores)), key)


def inline_preview(png: bytes, limit: int = INLINE_PREVIEW_BYTES) -> bytes:
    """A JPEG copy of a preview PNG of at most ``limit`` bytes, to inline where the PNG is too large.

    The quality drops first, then the image shrinks by a quarter per step (keeping its aspect ratio), until
    the JPEG fits. Past a shortest side of 32 px it stops shrinking and returns the smallest JPEG it made.

    Args:
        png: The preview as written to the store.
        limit: The most bytes the JPEG may take.

    Returns:
        The JPEG bytes.
    """
    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGB")
    while True:
        for quality in _INLINE_QUALITIES:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() <= limit:
                return buffer.getvalue()
        if min(image.size) <= _INLINE_MIN_SIDE:
            return buffer.getvalue()
        width, height = image.size
        image = image.resize((max(1, width * 3 // 4), max(1, height * 3 // 4)), Image.Resampling.LANCZOS)


def inline_preview_uri(png: bytes, limit: int = INLINE_PREVIEW_BYTES) -> str:
    """The ``data:`` URI of :func:`inline_preview`, for a markdown image."""
    return f"data:image/jpeg;base64,{base64.b64encode(inline_preview(png, limit)).decode()}"


@task(name="check-reconstruction", task_run_name="reconstruct-{units.dataset}")
def check_reconstruction_task(
    store: StoreRef, root: str, units: StoredUnits, ref: TokenizerRef, sample: int, preprocess: str = "ours"
) -> ReconstructionReport | None:
    """Prefect task around :func:`check_reconstruction`."""
    return check_reconstruction(store.open(), Path(root), units, ref, sample=sample, preprocess=preprocess)
