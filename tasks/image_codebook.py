"""Learning a patch-vq image codebook from a bounded, deterministic sample of the datasets' images."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task

from im2sp_models.errors import ItemRejected
from im2sp_models.image_preprocess import decode_image
from im2sp_models.image_tokenizers.patch_vq import PatchVQ, PatchVQConfig, training_patches
from storage.blob_writer import BlobWriter
from storage.hashing import fingerprint
from storage.kinds import IMAGE_CODEBOOK, SHARED
from storage.locks import shard_lock
from storage.reader import verified_local_copy
from storage.store import Store, StoreRef
from storage.versions import StoreVersion, current_learned_from, current_version


@dataclass(frozen=True)
class CodebookRef:
    """A committed codebook version: its id (the tokenizer fingerprint), URL and training facts."""

    codebook_id: str
    url: str
    codebook_size: int
    images: int
    skipped_images: int
    reused: bool = False


def codebook_inputs(images: list[tuple[str, str]], settings: ImageCodebookSettings) -> str:
    """Fingerprint of what a codebook is learned from: the sampled images' (path, sha256) and the settings.

    The device and I/O threads are left out: they do not change the codebook.
    """
    named = {"images": sorted(images), "size": settings.codebook_size, "seed": settings.seed, "niter": settings.niter}
    return fingerprint(named)


def reusable_codebook(store: Store, inputs: str) -> CodebookRef | None:
    """The current codebook when it was learned from exactly ``inputs`` and is intact, else None."""
    found = current_learned_from(store, IMAGE_CODEBOOK, inputs)
    if found is None:
        return None
    version, made = found
    skipped = made.get("skipped_images", 0)
    return CodebookRef(version.version, version.url, made["codebook_size"], made["images"], skipped, reused=True)


def sample_images(
    sources: list[tuple[str, str, list[tuple[str, str, str]]]], limit: int, seed: int
) -> list[tuple[Path, str]]:
    """Pick at most ``limit`` images across datasets, by a seeded hash of their ids (stable as data grows).

    Args:
        sources: ``(dataset, root, [(image id, relative path, sha256)])`` per dataset.
        limit: Most images to return.
        seed: Changes the sample.

    Returns:
        Each picked image's path and sha256.
    """
    ranked = []
    for dataset, root, rows in sources:
        for image_id, relpath, sha256 in rows:
            rank = hashlib.sha256(f"{seed}:{dataset}:{image_id}".encode()).hexdigest()
            ranked.append((rank, Path(root) / relpath, sha256))
    return [(path, sha256) for _, path, sha256 in sorted(ranked)[:limit]]


def _decode(path: Path) -> Any:
    try:
        return decode_image(path.read_bytes())
    except (ItemRejected, OSError):
        return None


def _decoded(paths: list[Path], workers: int, window: int = 64) -> Iterator[np.ndarray]:
    """The decodable images of ``paths``, in order, decoded ``window`` at a time (bounded memory)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), window):
            yield from (image for image in pool.map(_decode, paths[start : start + window]) if image is not None)


@dataclass(frozen=True)
class ImageCodebookSettings:
    """How learn-image-codebook trains (the ``image_tokenizer`` section's knobs, the device, I/O threads).

    Attributes:
        codebook_size: Entries in the codebook.
        seed: Seeds k-means.
        niter: K-means iterations.
        device: Where k-means runs (``auto``, ``cpu``, ``cuda``).
        io_workers: Threads that read and decode the sampled images.
    """

    codebook_size: int = 8192
    seed: int = 0
    niter: int = 20
    device: str = "auto"
    io_workers: int = 4


def learn_image_codebook(
    store: Store, paths: list[Path], settings: ImageCodebookSettings, inputs: str | None = None
) -> CodebookRef:
    """Train a patch-vq codebook, commit it under ``_shared/image-codebook/<fingerprint>`` and publish it.

    With ``inputs`` (:func:`codebook_inputs`), a current codebook learned from the same inputs is returned as
    it is: a rerun with nothing new to learn from neither trains nor writes.
    """
    reused = reusable_codebook(store, inputs) if inputs else None
    if reused is not None:
        return reused
    config = PatchVQConfig(codebook_size=settings.codebook_size)
    seed, niter = settings.seed, settings.niter
    patches, used = training_patches(_decoded(paths, settings.io_workers), len(paths), config, seed)
    tokenizer = PatchVQ.train_on_patches(patches, config, seed=seed, niter=niter, device=settings.device)
    del patches
    version = StoreVersion(store, SHARED, IMAGE_CODEBOOK, tokenizer.fingerprint)
    version.ensure_created(
        {
            "tokenizer": PatchVQ.name,
            "codebook_size": config.codebook_size,
            "images": used,
            "skipped_images": len(paths) - used,
            "seed": seed,
            "niter": niter,
            **({"inputs": inputs} if inputs else {}),
        }
    )
    with shard_lock(store, version.lock_key("all")), tempfile.TemporaryDirectory() as folder:
        if version.needs_build("all", tokenizer.fingerprint):  # a concurrent run waited, then finds it committed
            tokenizer.save(Path(folder))
            with BlobWriter(
                version, "all", input_fingerprint=tokenizer.fingerprint, model_fingerprint=tokenizer.fingerprint
            ) as writer:
                for name in ("codebook.npy", "config.json"):
                    writer.write(name, {"bytes": (Path(folder) / name).read_bytes()})
    version.publish(["all"])
    return CodebookRef(tokenizer.fingerprint, version.url, config.codebook_size, used, len(paths) - used)


def current_codebook(store: Store) -> tuple[str, Path] | None:
    """Return the id and a local folder of the current image codebook, or None when none was learned."""
    version = current_version(store, SHARED, IMAGE_CODEBOOK)
    if version is None:
        return None
    return version.version, verified_local_copy(version, "all")  # a flipped byte would change every unit


@task(name="learn-patch-codebook")
def learn_image_codebook_task(
    store: StoreRef, paths: list[str], settings: ImageCodebookSettings, inputs: str | None = None
) -> CodebookRef:
    """Prefect task around :func:`learn_image_codebook`."""
    return learn_image_codebook(store.open(), [Path(p) for p in paths], settings, inputs)
