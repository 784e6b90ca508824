"""Tiny datasets in the real COCO/SpokenCOCO/Karpathy and Flickr8k/Flickr-Audio layouts, built per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from flows.config import PipelineConfig, parse_config


def write_image(path: Path, seed: int, mode: str = "RGB") -> None:
    """Write an 8×8 JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, "JPEG")


def write_tone(path: Path, seconds: float = 0.5, rate: int = 16_000) -> None:
    """Write a 16-bit mono sine tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype="PCM_16")


def coco_entry(cocoid: int, split: str, captions: list[str]) -> dict[str, Any]:
    """One Karpathy dataset_coco.json entry."""
    folder = "train2014" if split == "train" else "val2014"
    return {
        "filepath": folder,
        "filename": f"COCO_{folder}_{cocoid:012d}.jpg",
        "imgid": cocoid,
        "split": split,
        "sentences": [
            {"tokens": c.split(), "raw": c, "imgid": cocoid, "sentid": cocoid * 10 + i} for i, c in enumerate(captions)
        ],
        "cocoid": cocoid,
    }


def write_coco(root: Path, entries: list[dict[str, Any]], *, speech: bool = True, images: bool = True) -> None:
    """Write a Karpathy file, the images it lists and (optionally) SpokenCOCO with one utterance per caption."""
    (root / "karpathy").mkdir(parents=True, exist_ok=True)
    (root / "karpathy" / "dataset_coco.json").write_text(json.dumps({"images": entries, "dataset": "coco"}))
    spoken: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for entry in entries:
        if images:
            write_image(root / "COCO_2014" / entry["filepath"] / entry["filename"], entry["cocoid"])
        captions = []
        for n, sentence in enumerate(entry["sentences"]):
            uttid = f"spk-{sentence['sentid']}_{entry['cocoid']}_{n}"
            wav = f"wavs/{entry['filepath'][:-4]}/0/{uttid}.wav"
            if speech:
                write_tone(root / "SpokenCOCO" / wav)
            captions.append({"text": sentence["raw"].upper(), "speaker": "spk", "uttid": uttid, "wav": wav})
        spoken[entry["filepath"][:-4]].append(
            {"image": f"{entry['filepath']}/{entry['filename']}", "captions": captions}
        )
    if speech:
        for part, data in spoken.items():
            (root / "SpokenCOCO" / f"SpokenCOCO_{part}.json").write_text(json.dumps({"data": data}))


def write_flickr(root: Path, images: dict[str, str], tokens: list[str], wav2capt: list[str]) -> None:
    """Write a Flickr8k layout: ``images`` maps file name to split; ``tokens`` are token.txt lines."""
    files = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt", "test": "Flickr_8k.testImages.txt"}
    text = root / "Flickr8k_text"
    text.mkdir(parents=True, exist_ok=True)
    for split, name in files.items():
        (text / name).write_text("".join(f"{f}\n" for f, s in images.items() if s == split))
    for index, filename in enumerate(images):
        write_image(root / "Flicker8k_Dataset" / filename, index)
    (text / "Flickr8k.token.txt").write_text("\n".join(tokens) + "\n")
    audio = root / "flickr_audio"
    (audio / "wavs").mkdir(parents=True, exist_ok=True)
    for line in wav2capt:
        write_tone(audio / "wavs" / line.split()[0])
    (audio / "wav2capt.txt").write_text("\n".join(wav2capt) + "\n")
    (audio / "wav2spk.txt").write_text("".join(f"{line.split()[0]} 3\n" for line in wav2capt))


#: A unit-mel vocoder small enough to train a few steps in a test.
TINY_VOCODER: dict[str, Any] = {
    "hidden": 16,
    "layers": 2,
    "duration_hidden": 8,
    "duration_layers": 1,
    "batch_size": 4,
    "segment_frames": 16,
    "warmup_steps": 0,
    "griffin_lim_iters": 2,
}

#: unit-hifigan: 320 samples per unit (8 · 5 · 8) from a generator a few channels wide, discriminators 1/16 wide.
TINY_HIFIGAN: dict[str, Any] = {
    "upsample_rates": [8, 5, 8],
    "upsample_kernel_sizes": [16, 11, 16],
    "upsample_initial_channel": 16,
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3, 5]],
    "embedding_dim": 8,
    "var_pred_hidden_dim": 8,
    "var_pred_dropout": 0.1,
    "segment_size": 320 * 6,
    "batch_size": 2,
    "discriminator_divisor": 16,
    "learning_rate": 2e-3,
    "lr_decay_every": 4,
    "lr_decay": 0.9,
}


def tiny_config(
    root: Path, sections: dict[str, dict[str, Any]] | None = None, *, shard_size: int = 1
) -> PipelineConfig:
    """A pipeline config for ``write_coco(root / "coco", ...)`` with tiny models; ``sections`` update it."""
    return parse_config(tiny_document(sections, shard_size=shard_size), base=root)


def tiny_document(sections: dict[str, dict[str, Any]] | None = None, *, shard_size: int = 1) -> dict[str, Any]:
    """The config document of :func:`tiny_config` (paths relative to the config file's folder), for a YAML file."""
    document: dict[str, Any] = {
        "store": {"url": "store"},
        "datasets": {"coco": {"kind": "coco", "root": "coco"}},
        "sharding": {"shard_size": shard_size},
        "image_tokenizer": {"codebook_size": 16, "niter": 3},
        "speech": {"clusters": 4, "sample_fraction": 1.0, "niter": 3},
        "training": {"preset": "tiny", "steps": 2, "batch_size": 2, "warmup_steps": 1, "checkpoint_every": 1},
        "vocoder_training": {"steps": 4, "checkpoint_every": 2, "settings": dict(TINY_VOCODER)},
        "evaluation": {"asr": "wav2vec2-ctc"},  # no checkpoint: the ASR topline is skipped (fast)
    }
    for section, values in (sections or {}).items():
        document[section] = {**document.get(section, {}), **values}
    return document
