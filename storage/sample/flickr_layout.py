"""Writing sample images, captions and speech in the Flickr8k / Flickr Audio Caption Corpus layouts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from storage.sample.coco_layout import save_jpeg
from storage.sample.photos import SampleImage
from storage.sample.speech import CaptionSpeaker, write_wav

MISSING_KEY = "2258277193_586949ec62.jpg.1"  # a key in the real token file with no image behind it
_SPLITS = ["train"] * 16 + ["val"] * 5 + ["test"] * 5
_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


def flickr_name(index: int, name: str) -> str:
    """Return a Flickr-style file name (``<digits>_<hex>.jpg``) for sample image ``index``."""
    return f"{1_000_268_201 + 37_731 * index}_{hashlib.sha1(name.encode()).hexdigest()[:10]}.jpg"


def write_flickr8k(root: Path, images: list[SampleImage], speaker: CaptionSpeaker) -> None:
    """Write ``Flicker8k_Dataset/``, ``Flickr8k_text/``, ``karpathy/`` and ``flickr_audio/`` under ``root``."""
    tokens: list[str] = []
    splits: dict[str, list[str]] = {s: [] for s in _SPLIT_FILES}
    karpathy: list[dict[str, object]] = []
    wav2capt: list[str] = []
    for index, image in enumerate(images):
        filename = flickr_name(index, image.name)
        split = _SPLITS[index % len(_SPLITS)]
        save_jpeg(image.render(), root / "Flicker8k_Dataset" / filename)
        splits[split].append(filename)
        sentences = []
        for n, caption in enumerate(image.photo.captions):
            tokens.append(f"{filename}#{n}\t{caption}")
            sentences.append(
                {
                    "tokens": caption.lower().rstrip(".").split(),
                    "raw": caption,
                    "imgid": index,
                    "sentid": index * 10 + n,
                }
            )
            wav = f"{Path(filename).stem}_{n}.wav"
            write_wav(root / "flickr_audio" / "wavs" / wav, speaker.speak(caption))
            wav2capt.append(f"{wav} {filename} #{n}")
        karpathy.append(
            {
                "filename": filename,
                "imgid": index,
                "split": split,
                "sentences": sentences,
                "sentids": [s["sentid"] for s in sentences],
            }
        )
    tokens.append(f"{MISSING_KEY}#0\tA caption whose image is not part of the dataset.")
    text = root / "Flickr8k_text"
    text.mkdir(parents=True, exist_ok=True)
    (text / "Flickr8k.token.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    for split, filename in _SPLIT_FILES.items():
        (text / filename).write_text("\n".join(splits[split]) + "\n", encoding="utf-8")
    (root / "karpathy").mkdir(parents=True, exist_ok=True)
    (root / "karpathy" / "dataset_flickr8k.json").write_text(
        json.dumps({"images": karpathy, "dataset": "flickr8k"}, ensure_ascii=False), encoding="utf-8"
    )
    audio = root / "flickr_audio"
    (audio / "wav2capt.txt").write_text("\n".join(wav2capt) + "\n", encoding="utf-8")
    (audio / "wav2spk.txt").write_text("\n".join(f"{line.split()[0]} 1" for line in wav2capt) + "\n", encoding="utf-8")
