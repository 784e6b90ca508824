"""Reconstruction check: decode stored units back to pixels, measure PSNR, write a preview grid PNG."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from prefect import task

from im2sp_models.image_preprocess import decode_image, to_uint8_image
from storage.kinds import IMAGE_UNITS
from storage.reader import read_units
from storage.store import Store
from storage.versions import StoreVersion
from tasks.models import TokenizerRef, tokenizer_for

THUMB = 128


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


def check_reconstruction(
    store: Store,
    root: Path,
    dataset: str,
    version_id: str,
    shard_ids: list[str],
    paths: dict[str, str],
    ref: TokenizerRef,
    *,
    sample: int = 8,
) -> ReconstructionReport | None:
    """Decode the first ``sample`` stored items (a fixed sample) and compare them with their sources.

    Returns None when the tokenizer cannot decode or nothing was stored.
    """
    tokenizer = tokenizer_for(ref)
    if not tokenizer.can_decode:
        return None
    version = StoreVersion(store, dataset, IMAGE_UNITS, version_id)
    keys: list[str] = []
    grids: list[np.ndarray] = []
    for shard_id in shard_ids:
        shard_keys, units = read_units(version, shard_id)
        take = sample - len(keys)
        keys += shard_keys[:take]
        grids.append(units[:take])
        if len(keys) >= sample:
            break
    if not keys:
        return None
    units = np.concatenate(grids)
    originals = np.stack([decode_image((root / paths[key]).read_bytes()) for key in keys])
    decoded = tokenizer.decode(units)
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


@task(name="check-reconstruction", task_run_name="reconstruct-{dataset}")
def check_reconstruction_task(
    store_url: str,
    storage_options: dict[str, Any] | None,
    root: str,
    dataset: str,
    version_id: str,
    shard_ids: list[str],
    paths: dict[str, str],
    ref: TokenizerRef,
    sample: int,
) -> ReconstructionReport | None:
    """Prefect task around :func:`check_reconstruction`."""
    return check_reconstruction(
        Store(store_url, storage_options), Path(root), dataset, version_id, shard_ids, paths, ref, sample=sample
    )
