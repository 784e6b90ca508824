"""Learning a patch-vq image codebook from a bounded, deterministic sample of the datasets' images."""

from __future__ import annotations

import hashlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task

from im2sp_models.errors import ItemRejected
from im2sp_models.image_preprocess import decode_image
from im2sp_models.image_tokenizers.patch_vq import PatchVQ, PatchVQConfig
from storage.blob_writer import BlobWriter
from storage.kinds import IMAGE_CODEBOOK, SHARED
from storage.locks import shard_lock
from storage.reader import verified_local_copy
from storage.store import Store, StoreRef
from storage.versions import StoreVersion, current_version


@dataclass(frozen=True)
class CodebookRef:
    """A committed codebook version: its id (the tokenizer fingerprint), URL and training facts."""

    codebook_id: str
    url: str
    codebook_size: int
    images: int
    skipped_images: int


def sample_images(sources: list[tuple[str, str, list[tuple[str, str]]]], limit: int, seed: int) -> list[Path]:
    """Pick at most ``limit`` images across datasets, by a seeded hash of their ids (stable as data grows).

    Args:
        sources: ``(dataset, root, [(image id, relative path)])`` per dataset.
        limit: Most images to return.
        seed: Changes the sample.
    """
    ranked = []
    for dataset, root, rows in sources:
        for image_id, relpath in rows:
            rank = hashlib.sha256(f"{seed}:{dataset}:{image_id}".encode()).hexdigest()
            ranked.append((rank, Path(root) / relpath))
    return [path for _, path in sorted(ranked)[:limit]]


def _decode(path: Path) -> Any:
    try:
        return decode_image(path.read_bytes())
    except (ItemRejected, OSError):
        return None


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


def learn_image_codebook(store: Store, paths: list[Path], settings: ImageCodebookSettings) -> CodebookRef:
    """Train a patch-vq codebook, commit it under ``_shared/image-codebook/<fingerprint>`` and publish it."""
    config = PatchVQConfig(codebook_size=settings.codebook_size)
    seed, niter = settings.seed, settings.niter
    with ThreadPoolExecutor(max_workers=settings.io_workers) as pool:
        decoded = list(pool.map(_decode, paths))
    images = [image for image in decoded if image is not None]
    tokenizer = PatchVQ.train(images, config, seed=seed, niter=niter, device=settings.device)
    version = StoreVersion(store, SHARED, IMAGE_CODEBOOK, tokenizer.fingerprint)
    version.ensure_created(
        {
            "tokenizer": PatchVQ.name,
            "codebook_size": config.codebook_size,
            "images": len(images),
            "seed": seed,
            "niter": niter,
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
    return CodebookRef(tokenizer.fingerprint, version.url, config.codebook_size, len(images), len(paths) - len(images))


def current_codebook(store: Store) -> tuple[str, Path] | None:
    """Return the id and a local folder of the current image codebook, or None when none was learned."""
    version = current_version(store, SHARED, IMAGE_CODEBOOK)
    if version is None:
        return None
    return version.version, verified_local_copy(version, "all")  # a flipped byte would change every unit


@task(name="learn-patch-codebook")
def learn_image_codebook_task(store: StoreRef, paths: list[str], settings: ImageCodebookSettings) -> CodebookRef:
    """Prefect task around :func:`learn_image_codebook`."""
    return learn_image_codebook(store.open(), [Path(p) for p in paths], settings)
