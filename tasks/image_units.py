"""Tokenizing one shard of images into Zarr units (plain function + its Prefect task)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task

from im2sp_models.errors import ItemRejected
from im2sp_models.image_preprocess import decode_image
from storage.kinds import IMAGE_UNITS
from storage.store import Store
from storage.versions import StoreVersion
from storage.zarr_writers import ZarrUnitsWriter
from tasks.jobs import ShardJob, ShardOutcome
from tasks.prefetch import ordered_prefetch
from tasks.tokenizers import TokenizerRef, tokenizer_for


def _load(root: Path, item: tuple[str, str, str]) -> tuple[str, np.ndarray | str]:
    key, relpath, sha256 = item
    try:
        data = (root / relpath).read_bytes()
    except OSError as error:
        return key, f"missing file: {relpath} ({error.strerror})"
    if hashlib.sha256(data).hexdigest() != sha256:
        return key, f"changed since manifest: {relpath}; rerun build-manifests"
    try:
        return key, decode_image(data)
    except ItemRejected as verdict:
        return key, str(verdict)


def tokenize_shard(
    store: Store,
    root: Path,
    job: ShardJob,
    version_id: str,
    ref: TokenizerRef,
    *,
    batch_size: int = 32,
    io_workers: int = 4,
    codec: str = "blosc-zstd-shuffle",
) -> ShardOutcome:
    """Tokenize one shard unless it is already committed for the same inputs; commit it with its rejects."""
    version = StoreVersion(store, job.dataset, IMAGE_UNITS, version_id)
    marker = version.marker(job.shard_id)
    if marker is not None and marker.input_fingerprint == job.input_fingerprint:
        return ShardOutcome(job.dataset, job.shard_id, False, marker.stored, len(marker.rejected), marker.stored_bytes)
    tokenizer = tokenizer_for(ref)
    batch_keys: list[str] = []
    batch: list[np.ndarray] = []
    with (
        ZarrUnitsWriter(
            version,
            job.shard_id,
            input_fingerprint=job.input_fingerprint,
            model_fingerprint=tokenizer.fingerprint,
            codec=codec,
        ) as writer,
        ThreadPoolExecutor(max_workers=io_workers) as pool,
    ):

        def flush() -> None:
            units = tokenizer.encode(np.stack(batch))
            for key, grid in zip(batch_keys, units, strict=True):
                writer.write(key, {"units": grid})
            batch_keys.clear()
            batch.clear()

        for key, result in ordered_prefetch(pool, lambda item: _load(root, item), job.items, 2 * batch_size):
            if isinstance(result, str):
                writer.reject(key, result)
                continue
            batch_keys.append(key)
            batch.append(result)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    marker = version.require_marker(job.shard_id)
    return ShardOutcome(job.dataset, job.shard_id, True, marker.stored, len(marker.rejected), marker.stored_bytes)


@task(name="tokenize-shard", task_run_name="tokenize-{job.dataset}-{job.shard_id}")
def tokenize_shard_task(
    store_url: str,
    storage_options: dict[str, Any] | None,
    root: str,
    job: ShardJob,
    version_id: str,
    ref: TokenizerRef,
    batch_size: int,
    io_workers: int,
    codec: str,
) -> ShardOutcome:
    """Prefect task around :func:`tokenize_shard` (arguments are references, the result is small)."""
    return tokenize_shard(
        Store(store_url, storage_options),
        Path(root),
        job,
        version_id,
        ref,
        batch_size=batch_size,
        io_workers=io_workers,
        codec=codec,
    )
