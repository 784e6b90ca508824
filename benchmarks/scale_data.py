"""Synthetic COCO-Karpathy + SpokenCOCO and Flickr8k + Flickr Audio at their real counts × a fraction.

The layouts are the real ones (``dataset_coco.json``, ``SpokenCOCO_{train,val}.json``, ``train2014/``,
``val2014/``; ``Flickr8k_text/``, ``Flicker8k_Dataset/``, ``flickr_audio/wav2capt.txt``), the media tiny (64×64
JPEGs, 0.2–0.5 s 16 kHz WAVs) so that the control plane, not the models, dominates a run. Every file differs.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: Karpathy's COCO split sizes (123,287 images) and SpokenCOCO's utterance count.
COCO_SPLITS = {"train": 82_783, "restval": 30_504, "val": 5_000, "test": 5_000}
COCO_UTTERANCES = 616_767
#: Flickr8k: 8,091 captioned images, 8,000 of them in a split (the images a run lists); Flickr Audio speaks the
#: 5 captions of each of those 8,000.
FLICKR_SPLITS = {"train": 6_000, "val": 1_000, "test": 1_000}
FLICKR_UNSPLIT = 91
RATE = 16_000
WORDS = tuple(
    [
        "a",
        "an",
        "the",
        "dog",
        "cat",
        "man",
        "woman",
        "child",
        "bus",
        "train",
        "plate",
        "of",
        "food",
        "on",
        "with",
        "in",
        "near",
        "red",
        "blue",
        "green",
        "big",
    ]
)
#: WAV files per folder, as SpokenCOCO spreads its files over many folders.
PER_FOLDER = 1000


def counts(fraction: float) -> dict[str, int]:
    """Images and utterances of each dataset at ``fraction`` of the real counts."""
    coco_images = sum(max(1, round(n * fraction)) for n in COCO_SPLITS.values())
    flickr_split = sum(max(1, round(n * fraction)) for n in FLICKR_SPLITS.values())
    return {
        "coco_images": coco_images,
        "coco_utterances": max(coco_images * 5, round(COCO_UTTERANCES * fraction)),
        "flickr_images": flickr_split,  # the unsplit ones are in token.txt only: their captions are rejected
        "flickr_utterances": flickr_split * 5,
    }


def _jpeg(rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _wav(rng: np.random.Generator) -> bytes:
    samples = int(RATE * rng.uniform(0.2, 0.5))
    t = np.arange(samples) / RATE
    tone = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) + rng.normal(0, 0.02, samples)
    pcm = (np.clip(tone, -1, 1) * 32767).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16) + b"data" + struct.pack("<I", len(pcm))
    return header + pcm


def _caption(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(6, 13)))).capitalize() + "."


def write_coco(root: Path, fraction: float, rng: np.random.Generator) -> None:
    """Karpathy JSON, COCO 2014 images and SpokenCOCO (JSON lists + WAVs) at ``fraction`` of the real counts."""
    sizes = {split: max(1, round(n * fraction)) for split, n in COCO_SPLITS.items()}
    total = sum(sizes.values())
    extra = counts(fraction)["coco_utterances"] - 5 * total  # SpokenCOCO has a few images with 6 or 7 captions
    entries: list[dict[str, Any]] = []
    spoken: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    cocoid = 0
    written = 0
    for split, size in sizes.items():
        folder = "train2014" if split == "train" else "val2014"
        (root / "COCO_2014" / folder).mkdir(parents=True, exist_ok=True)
        for _ in range(size):
            cocoid += 1
            filename = f"COCO_{folder}_{cocoid:012d}.jpg"
            (root / "COCO_2014" / folder / filename).write_bytes(_jpeg(rng))
            n_captions = 5 + (1 if cocoid <= extra else 0)
            raws = [_caption(rng) for _ in range(n_captions)]
            sentences = [
                {"tokens": raw[:-1].lower().split(), "raw": raw, "imgid": cocoid, "sentid": cocoid * 10 + n}
                for n, raw in enumerate(raws)
            ]
            entries.append(
                {"filepath": folder, "filename": filename, "imgid": cocoid, "split": split,
                 "sentences": sentences, "cocoid": cocoid}
            )  # fmt: skip
            captions = []
            for n, raw in enumerate(raws):
                uttid = f"A{written % 997:04d}-{cocoid}_{n}"
                wav = f"wavs/{folder[:-4]}/{written // PER_FOLDER}/{uttid}.wav"
                path = root / "SpokenCOCO" / wav
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_wav(rng))
                written += 1
                captions.append({"text": raw.upper(), "speaker": uttid[:5], "uttid": uttid, "wav": wav})
            spoken[folder[:-4]].append({"image": f"{folder}/{filename}", "captions": captions})
    (root / "karpathy").mkdir(parents=True, exist_ok=True)
    (root / "karpathy" / "dataset_coco.json").write_text(json.dumps({"images": entries, "dataset": "coco"}))
    for part, data in spoken.items():
        (root / "SpokenCOCO" / f"SpokenCOCO_{part}.json").write_text(json.dumps({"data": data}))


def write_flickr(root: Path, fraction: float, rng: np.random.Generator) -> None:
    """Flickr8k text files and images, and Flickr Audio (5 spoken captions per image in a split)."""
    text, images, audio = root / "Flickr8k_text", root / "Flicker8k_Dataset", root / "flickr_audio"
    for folder in (text, images, audio / "wavs"):
        folder.mkdir(parents=True, exist_ok=True)
    split_files = {
        "train": "Flickr_8k.trainImages.txt",
        "val": "Flickr_8k.devImages.txt",
        "test": "Flickr_8k.testImages.txt",
    }
    tokens: list[str] = []
    wav2capt: list[str] = []
    number = 1_000_000_000
    unsplit = [f"{number + i}_{i:010x}.jpg" for i in range(round(FLICKR_UNSPLIT * fraction))]
    for name in unsplit:
        (images / name).write_bytes(_jpeg(rng))
        tokens += [f"{name}#{n}\t{_caption(rng)}" for n in range(5)]
    number += len(unsplit)
    for split, size in FLICKR_SPLITS.items():
        names = [f"{number + i}_{(number + i):010x}.jpg" for i in range(max(1, round(size * fraction)))]
        number += len(names)
        (text / split_files[split]).write_text("".join(f"{name}\n" for name in names))
        for name in names:
            (images / name).write_bytes(_jpeg(rng))
            for n in range(5):
                tokens.append(f"{name}#{n}\t{_caption(rng)}")
                wav = f"{name[:-4]}_{n}.wav"
                (audio / "wavs" / wav).write_bytes(_wav(rng))
                wav2capt.append(f"{wav} {name} #{n}")
    (text / "Flickr8k.token.txt").write_text("\n".join(tokens) + "\n")
    (audio / "wav2capt.txt").write_text("\n".join(wav2capt) + "\n")
    (audio / "wav2spk.txt").write_text("".join(f"{line.split()[0]} {i % 183}\n" for i, line in enumerate(wav2capt)))


def write_datasets(folder: Path, fraction: float) -> dict[str, int]:
    """Write both datasets under ``folder`` (once: a ``.complete`` file records what was written)."""
    done = folder / ".complete"
    if done.exists() and json.loads(done.read_text()).get("fraction") == fraction:
        return counts(fraction)
    for stale in ("coco", "flickr8k"):  # a partial or other-sized copy
        shutil.rmtree(folder / stale, ignore_errors=True)
    rng = np.random.default_rng(0)
    write_coco(folder / "coco", fraction, rng)
    write_flickr(folder / "flickr8k", fraction, rng)
    done.write_text(json.dumps({"fraction": fraction, **counts(fraction)}))
    return counts(fraction)
