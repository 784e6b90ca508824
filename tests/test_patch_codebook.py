"""The patches patch-vq's codebook learns from: every patch below the cap, an exact seeded sample above it."""

from __future__ import annotations

import numpy as np

from im2sp_models.image_tokenizers.patch_vq import PatchVQConfig, to_patches, training_patches


def _images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)  # decoded pixels are bytes / 255, as image_preprocess makes them
    return [rng.integers(0, 256, (3, 32, 32), dtype=np.uint8).astype(np.float32) / 255.0 for _ in range(count)]


def test_below_the_cap_every_patch_is_kept_in_image_order() -> None:
    config = PatchVQConfig(codebook_size=16, image_size=32)  # 16 patches per image, cap 256 × 16
    images = _images(5)
    patches, used = training_patches(iter(images), 5, config, seed=0)
    assert used == 5
    assert patches.dtype == np.float32
    assert np.array_equal(patches, np.concatenate([to_patches(image[None], 8) for image in images]))


def test_above_the_cap_a_seeded_sample_of_exact_patches() -> None:
    config = PatchVQConfig(codebook_size=2, image_size=32)  # cap 512 patches: 40 images give 640
    images = _images(40)
    every = np.concatenate([to_patches(image[None], 8) for image in images])
    patches, used = training_patches(iter(images), 40, config, seed=3)
    assert used == 40 and patches.shape == (512, 192) and patches.dtype == np.float32
    rows = {row.tobytes() for row in every}
    assert all(row.tobytes() in rows for row in patches)  # bit-exact: the byte round trip loses nothing
    assert len({row.tobytes() for row in patches}) == 512
    again, _ = training_patches(iter(images), 40, config, seed=3)
    other, _ = training_patches(iter(images), 40, config, seed=4)
    assert np.array_equal(patches, again) and not np.array_equal(patches, other)


def test_reads_at_most_count_images_and_copes_with_fewer() -> None:
    config = PatchVQConfig(codebook_size=2, image_size=32)
    images = _images(6)
    patches, used = training_patches(iter(images), 4, config, seed=0)
    assert used == 4 and len(patches) == 64
    fewer, used = training_patches(iter(images[:2]), 40, config, seed=0)  # rejects: planned 40, decoded 2
    assert used == 2 and np.array_equal(fewer, np.concatenate([to_patches(i[None], 8) for i in images[:2]]))
