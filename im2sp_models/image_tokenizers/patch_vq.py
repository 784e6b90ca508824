"""``patch-vq``: a weight-free tokenizer whose codebook is K RGB 8×8 patches learned by faiss k-means.

Encoding assigns each of the 32×32 patches of a 256×256 image to its nearest codebook patch (L2);
decoding pastes the codebook patches back. The grid is the same as ViT-VQGAN's, so everything downstream
is identical. A codebook is a folder: ``codebook.npy`` (K × 192 float32, patch pixels in C, y, x order)
and ``config.json``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import AfterValidator

from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError, NotEnoughDataError
from im2sp_models.image_tokenizers.registry import register_tokenizer
from im2sp_models.registry import ModelSettings, float32_only

#: faiss warns below this many training points per centroid; we refuse instead of training a poor codebook.
MIN_POINTS_PER_CENTROID = 39
#: k-means trains on at most this many patches per code (faiss's own default cap), drawn by :func:`training_patches`.
MAX_POINTS_PER_CENTROID = 256


@dataclass(frozen=True)
class PatchVQConfig:
    """Shape of a patch-vq codebook."""

    codebook_size: int = 8192
    patch: int = 8
    image_size: int = 256

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch

    @property
    def dim(self) -> int:
        """Values per patch."""
        return 3 * self.patch * self.patch


def to_patches(images: np.ndarray, patch: int) -> np.ndarray:
    """``(B, 3, S, S)`` → ``(B * (S/p)², 3·p·p)``, patches in row-major grid order."""
    b, c, s, _ = images.shape
    g = s // patch
    grid = images.reshape(b, c, g, patch, g, patch).transpose(0, 2, 4, 1, 3, 5)
    return np.ascontiguousarray(grid.reshape(b * g * g, c * patch * patch), dtype=np.float32)


def training_patches(
    images: Iterable[np.ndarray], count: int, config: PatchVQConfig, seed: int
) -> tuple[np.ndarray, int]:
    """The float32 patches k-means learns from, and how many images gave them.

    At most ``count`` images are read, one at a time, into one array allocated up front, so memory holds the
    patches once (not the decoded images, nor a list of per-image copies). When all patches would exceed 256
    per code, a seeded sample of 256·K of them is returned; until sampled they are held as bytes, which is
    exact because decoded pixels are bytes / 255. Below that cap every patch is returned, in image order.

    Args:
        images: ``(3, S, S)`` float32 images in [0, 1] (decoded by ``im2sp_models.image_preprocess``).
        count: Most images to read.
        config: The codebook's shape.
        seed: Seeds the sample.
    """
    per_image = config.grid**2
    cap = MAX_POINTS_PER_CENTROID * config.codebook_size
    sampled = count * per_image > cap
    held = np.empty((count * per_image, config.dim), dtype=np.uint8 if sampled else np.float32)
    used = 0
    for image in images:
        if used == count:
            break
        patches = to_patches(image[None], config.patch)
        held[used * per_image : (used + 1) * per_image] = np.rint(patches * 255.0) if sampled else patches
        used += 1
    held = held[: used * per_image]
    if not sampled:
        return held, used
    rows = np.sort(np.random.default_rng(seed).choice(len(held), cap, replace=False)) if len(held) > cap else None
    chosen = held if rows is None else held[rows]
    return chosen.astype(np.float32) / np.float32(255.0), used


def from_patches(patches: np.ndarray, batch: int, patch: int, grid: int) -> np.ndarray:
    """Inverse of :func:`to_patches`."""
    blocks = patches.reshape(batch, grid, grid, 3, patch, patch).transpose(0, 3, 1, 4, 2, 5)
    return np.ascontiguousarray(blocks.reshape(batch, 3, grid * patch, grid * patch))


class PatchVQSettings(ModelSettings):
    """patch-vq's options: none that change its units (its codebook folder decides them).

    ``precision`` is accepted as ``fp32`` only: encoding is a numpy float32 nearest-neighbour search.
    """

    precision: Annotated[str, AfterValidator(float32_only("patch-vq"))] = "fp32"


@register_tokenizer
class PatchVQ:
    """Nearest-patch tokenizer over a learned codebook.

    Args:
        config: Codebook shape.
        codebook: ``(K, 3·p·p)`` float32 patch vectors.
        device: ``cpu``, ``cuda`` or ``auto`` (faiss-gpu when present).
    """

    name: ClassVar[str] = "patch-vq"
    Settings: ClassVar[type[ModelSettings]] = PatchVQSettings
    #: A codebook folder; without one, the codebook learn-image-codebook published is used.
    needs_checkpoint: ClassVar[bool] = True
    learns_codebook: ClassVar[bool] = True

    def __init__(self, config: PatchVQConfig, codebook: np.ndarray, device: str = "auto") -> None:
        if codebook.shape != (config.codebook_size, config.dim):
            raise CheckpointError(f"codebook shape {codebook.shape} does not match config {config}")
        self.config = config
        self.codebook = np.ascontiguousarray(codebook, dtype=np.float32)
        self.device = resolve_device(device)
        self._index: Any = None

    @property
    def codebook_size(self) -> int:
        """Number of codes."""
        return self.config.codebook_size

    @property
    def can_decode(self) -> bool:
        """Always: decoding is a lookup."""
        return True

    @property
    def fingerprint(self) -> str:
        """Hash of name, config and codebook bytes."""
        digest = hashlib.sha256(json.dumps({"name": self.name, **asdict(self.config)}, sort_keys=True).encode())
        digest.update(self.codebook.tobytes())
        return digest.hexdigest()[:16]

    def codebook_vectors(self) -> np.ndarray:
        """The codebook patches."""
        return self.codebook

    def _faiss_index(self) -> Any:
        if self._index is None:
            import faiss

            index: Any = faiss.IndexFlatL2(self.config.dim)
            if self.device == "cuda" and hasattr(faiss, "StandardGpuResources"):
                index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
            index.add(self.codebook)
            self._index = index
        return self._index

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Nearest codebook patch for every patch of every image."""
        patches = to_patches(images, self.config.patch)
        _, ids = self._faiss_index().search(patches, 1)
        return np.asarray(ids, dtype=np.int64).reshape(images.shape[0], self.config.grid, self.config.grid)

    def decode(self, units: np.ndarray) -> np.ndarray:
        """Paste the codebook patches back into images."""
        patches = self.codebook[units.reshape(-1)]
        return from_patches(patches, units.shape[0], self.config.patch, self.config.grid)

    def save(self, folder: Path) -> None:
        """Write ``codebook.npy`` and ``config.json`` into a folder."""
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "codebook.npy", self.codebook)
        (folder / "config.json").write_text(json.dumps({"name": self.name, **asdict(self.config)}, indent=1))

    @classmethod
    def load(cls, checkpoint: Path | None, settings: PatchVQSettings | None = None, *, device: str = "auto") -> PatchVQ:
        """Load a codebook folder written by :meth:`save` (``settings``: nothing to set but fp32).

        Raises:
            CheckpointError: If files are missing or inconsistent.
        """
        if checkpoint is None:
            raise CheckpointError("patch-vq needs a codebook folder: run learn-image-codebook, or set a checkpoint")
        try:
            meta = json.loads((checkpoint / "config.json").read_text())
            codebook = np.load(checkpoint / "codebook.npy", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{checkpoint}: not a patch-vq codebook folder ({error})") from error
        if meta.get("name") != cls.name:
            raise CheckpointError(f"{checkpoint}: config.json names {meta.get('name')!r}, not {cls.name!r}")
        config = PatchVQConfig(**{k: v for k, v in meta.items() if k != "name"})
        return cls(config, codebook, device=device)

    @classmethod
    def train(
        cls,
        images: Iterable[np.ndarray],
        config: PatchVQConfig,
        *,
        seed: int = 0,
        niter: int = 20,
        device: str = "auto",
    ) -> PatchVQ:
        """Learn a codebook with faiss k-means from preprocessed images (a bounded sample of a dataset)."""
        listed = list(images)
        patches, _ = training_patches(listed, len(listed), config, seed)
        return cls.train_on_patches(patches, config, seed=seed, niter=niter, device=device)

    @classmethod
    def train_on_patches(
        cls, patches: np.ndarray, config: PatchVQConfig, *, seed: int = 0, niter: int = 20, device: str = "auto"
    ) -> PatchVQ:
        """Learn a codebook with faiss k-means from the patches of :func:`training_patches`.

        Raises:
            NotEnoughDataError: If there are fewer than 39 patches per code (faiss's floor for a sound clustering).
        """
        import faiss

        needed = MIN_POINTS_PER_CENTROID * config.codebook_size
        if len(patches) < needed:
            raise NotEnoughDataError(
                f"{len(patches)} patches cannot train {config.codebook_size} codes (need ≥ {needed}); lower "
                "image_tokenizer.codebook_size or raise image_tokenizer.sample_images (or add training images)"
            )
        resolved = resolve_device(device)
        kmeans = faiss.Kmeans(
            config.dim,
            config.codebook_size,
            niter=niter,
            seed=seed,
            gpu=resolved == "cuda",
            verbose=False,
            max_points_per_centroid=MAX_POINTS_PER_CENTROID,
        )
        kmeans.train(patches)
        return cls(config, np.asarray(kmeans.centroids, dtype=np.float32), device=resolved)
