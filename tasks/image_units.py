"""Tokenizing one shard of images into Zarr units (plain function + its Prefect task)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from prefect import task

from im2sp_models.errors import ItemRejected
from im2sp_models.image_preprocess import IMAGE_PREPROCESS
from storage.kinds import IMAGE_UNITS
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from storage.zarr_writers import ZarrUnitsWriter
from tasks.jobs import ShardJob, ShardOutcome, claimed, read_verified
from tasks.models import TokenizerRef, tokenizer_for
from tasks.prefetch import loaded_batches


def _load(root: Path, preprocess: str, item: tuple[str, str, str]) -> tuple[str, np.ndarray | str]:
    key = item[0]
    data = read_verified(root, item)
    if isinstance(data, str):
        return key, data
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
            load = partial(_load, root, settings.image_preprocess)
            for batch in loaded_batches(pool, load, job.items, settings.batch_size, writer.reject):
                units = tokenizer.encode(np.stack([image for _, image in batch]))
                for (key, _), grid in zip(batch, units, strict=True):
                    writer.write(key, {"units": grid})
        return ShardOutcome.of(version, job, built=True)


@task(name="tokenize-shard", task_run_name="tokenize-{job.dataset}-{job.shard_id}")
def tokenize_shard_task(
    store: StoreRef, root: str, job: ShardJob, version_id: str, ref: TokenizerRef, settings: TokenizeSettings
) -> ShardOutcome:
    """Prefect task around :func:`tokenize_shard` (arguments are references, the result is small)."""
    return tokenize_shard(store.open(), Path(root), job, version_id, ref, settings)
