"""Loading the bundled photos and deriving distinct variants (flips, crops) from them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from storage.sample.captions import PHOTOS, SamplePhoto


@dataclass(frozen=True)
class SampleImage:
    """One image of the sample data: a photo or a variant of it, with that photo's captions."""

    name: str
    photo: SamplePhoto
    variant: str  # "original", "mirrored", "cropped"

    def render(self) -> Image.Image:
        """Return the image as PIL (RGB, or L for grayscale photos); alpha is flattened onto white."""
        image = load_photo(self.photo)
        if self.variant == "mirrored":
            return ImageOps.mirror(image)
        if self.variant == "cropped":
            width, height = image.size
            return image.crop((width // 8, height // 8, width - width // 8, height - height // 8))
        return image


def photo_path(photo: SamplePhoto) -> Path:
    """Return the file of a photo inside the package that ships it."""
    if photo.package == "matplotlib":
        import matplotlib

        return Path(matplotlib.get_data_path()) / photo.relpath
    module = importlib.import_module(photo.package)
    return Path(str(module.__file__)).parent / photo.relpath


def load_photo(photo: SamplePhoto) -> Image.Image:
    """Open a bundled photo as RGB (or L when grayscale), flattening any alpha onto white."""
    with Image.open(photo_path(photo)) as image:
        image.load()
        if photo.grayscale:
            return image.convert("L")
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")


def sample_images() -> list[SampleImage]:
    """Return the sample's distinct images: every photo, then mirrored and cropped colour photos (26 in all)."""
    images = [SampleImage(p.name, p, "original") for p in PHOTOS]
    colour = [p for p in PHOTOS if not p.grayscale and p.name not in ("horse", "brick", "grass")]
    images += [SampleImage(f"{p.name}-mirrored", p, "mirrored") for p in colour[:5]]
    images += [SampleImage(f"{p.name}-cropped", p, "cropped") for p in colour[5:9]]
    return images
