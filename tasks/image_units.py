"""Tokenizing one shard of images into Zarr units (plain function + its Prefect task).

With a tokenizer whose ``decoder`` is ``nvjpeg``, the loading threads hand plain JPEGs on as bytes
(``im2sp_models.gpu_jpeg``), decoded and resized on the GPU batch by batch; every other file is decoded by
PIL in those threads, as with ``decoder: pil``, so rejections and their reasons are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import numpy as np
from prefect import task

from im2sp_models.errors import ItemRejected
from im2sp_models.gpu_jpeg import DeviceDecoding, EncodedJpeg, gpu_decodable, pixel_batch
from im2sp_models.image_preprocess import IMAGE_PREPROCESS
from storage.kinds import IMAGE_UNITS
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from storage.zarr_writers import ZarrUnitsWriter
from tasks.jobs import ShardJob, ShardOutcome, claimed, read_verified
from tasks.models import TokenizerRef, tokenizer_for
from tasks.prefetch import loaded_batches


def _load(
    root: Path, preprocess: str, item: tuple[str, str, str], *, on_gpu: bool = False
) -> tuple[str, np.ndarray | EncodedJpeg | str]:
    key = item[0]
    data = read_verified(root, item)
    if isinstance(data, str):
        return key, data
    if on_gpu and gpu_decodable(data):
        return key, EncodedJpeg(data)
    try:
        return key, IMAGE_PREPROCESS[preprocess](data)
    except ItemRejected as verdict:
        return key, str(verdict)


@dataclass(frozen=True)
class TokenizeSettings:
    """How tokenize-images runs each shard (the ``image_tokenizer`` and ``sharding`` sections' knobs).

    Attributes:
        batch_size: Images decoded and encoded at once.
        io_workers: Threads that read and decode images.
        codec: How the stored units are compressed (``storage/zarr_writers.py``).
        image_preprocess: How image files become pixels (a key of ``IMAGE_PREPROCESS``).
    """

    batch_size: int = 32
    io_workers: int = 4
    codec: str = "blosc-zstd-shuffle"
    image_preprocess: str = "ours"


def _encode_on_device(
    tokenizer: DeviceDecoding,
    batch: list[tuple[str, np.ndarray | EncodedJpeg]],
    fallback: Callable[[bytes], np.ndarray],
    writer: ZarrUnitsWriter,
) -> None:
    """Decode a batch's plain JPEGs on the tokenizer's device (the rest is decoded already), encode, write."""
    pixels = pixel_batch([item for _, item in batch], tokenizer.device, fallback)
    for position, reason in pixels.rejected:  # nvJPEG refused them, then so did PIL
        writer.reject(batch[position][0], reason)
    units = tokenizer.encode_pixels(pixels.pixels)
    for position, grid in zip(pixels.kept, units, strict=True):
        writer.write(batch[position][0], {"units": grid})


def tokenize_shard(
    store: Store,
    root: Path,
    job: ShardJob,
    version_id: str,
    ref: TokenizerRef,
    settings: TokenizeSettings | None = None,
) -> ShardOutcome:
    """Tokenize one shard unless it is already committed for the same inputs; commit it with its rejects.

    Args:
        store: The open store.
        root: The dataset's root folder (job items are relative to it).
        job: The shard's items and input fingerprint.
        version_id: The image-units version written into.
        ref: The tokenizer.
        settings: How to run it (default: :class:`TokenizeSettings`'s defaults).
    """
    settings = settings or TokenizeSettings()
    version = StoreVersion(store, job.dataset, IMAGE_UNITS, version_id)
    with claimed(version, job) as skipped:
        if skipped is not None:
            return skipped
        tokenizer = tokenizer_for(ref)
        with (
            ZarrUnitsWriter(
                version,
                job.shard_id,
                input_fingerprint=job.input_fingerprint,
                model_fingerprint=tokenizer.fingerprint,
                codec=settings.codec,
            ) as writer,
            ThreadPoolExecutor(max_workers=settings.io_workers) as pool,
        ):
            on_device = tokenizer if isinstance(tokenizer, DeviceDecoding) and tokenizer.decoder == "nvjpeg" else None
            load = partial(_load, root, settings.image_preprocess, on_gpu=on_device is not None)
            batches: Iterator[list[tuple[str, np.ndarray | EncodedJpeg]]]
            batches = loaded_batches(pool, load, job.items, settings.batch_size, writer.reject)
            for batch in batches:
                if on_device is not None:
                    _encode_on_device(on_device, batch, IMAGE_PREPROCESS[settings.image_preprocess], writer)
                    continue
                units = tokenizer.encode(np.stack([cast(np.ndarray, image) for _, image in batch]))  # PIL-decoded
                for (key, _), grid in zip(batch, units, strict=True):
                    writer.write(key, {"units": grid})
        return ShardOutcome.of(version, job, built=True)


@task(name="tokenize-shard", task_run_name="tokenize-{job.dataset}-{job.shard_id}")
def tokenize_shard_task(
    store: StoreRef, root: str, job: ShardJob, version_id: str, ref: TokenizerRef, settings: TokenizeSettings
) -> ShardOutcome:
    """Prefect task around :func:`tokenize_shard` (arguments are references, the result is small)."""
    return tokenize_shard(store.open(), Path(root), job, version_id, ref, settings)
