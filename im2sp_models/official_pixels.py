"""The pixel Im2Sp model's image preprocessing, as the authors' ``AutoProcessor`` for ``microsoft/git-large`` does.

``src/data/dataset_IM.py`` opens each image with PIL, ``convert("RGB")`` (no EXIF transpose, alpha dropped, not
composited) and hands it to ``AutoProcessor.from_pretrained("microsoft/git-large")``: CLIP's image processor
with git-large's ``preprocessor_config.json`` -- resize so the *shorter* side is 224 (the longer one
``int(224 * long / short)``, truncated) with PIL bicubic, centre crop 224 × 224 with the offsets floored
(``(h - 224) // 2``, unlike torchvision's rounding), scale by 1/255 (in float64, then float32), normalise with
CLIP's mean and standard deviation. This module does the same with PIL and numpy only; the values of a local
``preprocessor_config.json`` (size, crop size, mean, std, resample) are used when the folder has one.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from im2sp_models.errors import CheckpointError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipPreprocess:
    """CLIP image processing settings: shorter side ``size``, ``crop`` square, mean/std, PIL ``resample`` filter."""

    size: int = 224
    crop: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resample: int = int(Image.Resampling.BICUBIC)

    @classmethod
    def from_folder(cls, folder: Path | None) -> ClipPreprocess:
        """Read ``preprocessor_config.json`` of a local git folder (the defaults when there is none).

        Raises:
            CheckpointError: The file exists but asks for something this module does not do.
        """
        path = None if folder is None else folder / "preprocessor_config.json"
        if path is None or not path.is_file():
            return cls()
        document: dict[str, Any] = json.loads(path.read_text())
        for flag in ("do_resize", "do_center_crop", "do_normalize", "do_rescale"):
            if document.get(flag) is False:
                raise CheckpointError(f"{path}: {flag} false is not how git-large's processor runs")
        size, crop = document.get("size", 224), document.get("crop_size", 224)
        if isinstance(size, dict):
            size = size.get("shortest_edge")
        if isinstance(crop, dict):
            crop = crop["height"] if crop.get("height") == crop.get("width") else None
        if not isinstance(size, int) or not isinstance(crop, int):
            raise CheckpointError(f"{path}: expected a shortest-edge size and a square crop size")
        mean, std = document.get("image_mean", CLIP_MEAN), document.get("image_std", CLIP_STD)
        return cls(size, crop, tuple(mean), tuple(std), int(document.get("resample", cls.resample)))

    def __call__(self, data: bytes) -> np.ndarray:
        """Image bytes → ``(3, crop, crop)`` float32, normalised.

        Raises:
            OSError: Undecodable image (PIL's error).
        """
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
        return self.from_image(image)

    def from_image(self, image: Image.Image) -> np.ndarray:
        """An RGB PIL image → ``(3, crop, crop)`` float32, normalised."""
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.size, int(self.size * long / short)
        target = (new_short, new_long) if width <= height else (new_long, new_short)
        resized = np.asarray(image.resize(target, resample=Image.Resampling(self.resample)))
        top, left = (resized.shape[0] - self.crop) // 2, (resized.shape[1] - self.crop) // 2
        if top < 0 or left < 0:
            raise ValueError(f"crop {self.crop} larger than the resized image {resized.shape[:2]}")
        cropped = resized[top : top + self.crop, left : left + self.crop]
        scaled = (cropped.astype(np.float64) * (1 / 255)).astype(np.float32)
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return np.ascontiguousarray(((scaled - mean) / std).transpose(2, 0, 1), dtype=np.float32)
