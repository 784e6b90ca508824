"""Writing sample images, captions and speech in the COCO 2014 / Karpathy / SpokenCOCO layouts."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from storage.sample.photos import SampleImage
from storage.sample.speech import CaptionSpeaker, write_wav

SPEAKER = "piperjoe0us0medium0001"
TRUNCATED_ID = 167126  # the real COCO train image whose JPEG is truncated
# Karpathy splits of the sample, in image order: COCO keeps train in train2014/, the rest in val2014/.
_SPLITS = ["train"] * 14 + ["restval"] * 2 + ["val"] * 5 + ["test"] * 5


def coco_id(index: int) -> int:
    """Return the sample's COCO id of image ``index`` (stable, never the truncated image's id)."""
    return 100_003 + 4_099 * index


def save_jpeg(image: Image.Image, path: Path, *, rotated: bool = False) -> None:
    """Save as JPEG; ``rotated`` stores the pixels turned 90° with EXIF Orientation 6 to undo it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rotated:
        image.save(path, "JPEG", quality=90)
        return
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    image.rotate(90, expand=True).save(path, "JPEG", quality=90, exif=exif.tobytes())


def write_coco(root: Path, images: list[SampleImage], speaker: CaptionSpeaker) -> None:
    """Write ``COCO_2014/``, ``karpathy/dataset_coco.json`` and ``SpokenCOCO/`` under ``root``."""
    karpathy: list[dict[str, object]] = []
    annotations: dict[str, dict[str, list[dict[str, object]]]] = {
        f: {"images": [], "annotations": []} for f in ("train2014", "val2014")
    }
    spoken: dict[str, list[dict[str, object]]] = {"train": [], "val": []}
    entries = [(coco_id(i), image, _SPLITS[i % len(_SPLITS)]) for i, image in enumerate(images)]
    entries.append((TRUNCATED_ID, images[0], "train"))
    sentid = 700_000
    for position, (cocoid, image, split) in enumerate(entries):
        folder = "train2014" if split == "train" else "val2014"
        filename = f"COCO_{folder}_{cocoid:012d}.jpg"
        rendered = image.render()
        path = root / "COCO_2014" / folder / filename
        save_jpeg(rendered, path, rotated=image.name == "rocket")
        if cocoid == TRUNCATED_ID:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) * 2 // 3])
        annotations[folder]["images"].append(
            {"id": cocoid, "file_name": filename, "height": rendered.height, "width": rendered.width}
        )
        sentences, utterances = [], []
        for n, caption in enumerate(image.photo.captions):
            sentid += 1
            # Real Karpathy "raw" strings sometimes end in spaces; keep a few to prove they are stripped.
            raw = caption + (" " if (position + n) % 7 == 0 else "")
            tokens = caption.lower().rstrip(".").split()
            sentences.append({"tokens": tokens, "raw": raw, "imgid": position, "sentid": sentid})
            annotations[folder]["annotations"].append({"image_id": cocoid, "id": sentid, "caption": raw})
            if cocoid == TRUNCATED_ID:
                continue
            uttid = f"{SPEAKER}-{sentid:013d}_{cocoid}_{n}"
            wav = f"wavs/{folder[:-4]}/0/{uttid}.wav"
            write_wav(root / "SpokenCOCO" / wav, speaker.speak(caption))
            utterances.append({"text": caption.upper(), "speaker": SPEAKER, "uttid": uttid, "wav": wav})
        if utterances:
            spoken[folder[:-4]].append({"image": f"{folder}/{filename}", "captions": utterances})
        karpathy.append(
            {
                "filepath": folder,
                "filename": filename,
                "imgid": position,
                "split": split,
                "sentences": sentences,
                "sentids": [s["sentid"] for s in sentences],
                "cocoid": cocoid,
            }
        )
    _dump(root / "karpathy" / "dataset_coco.json", {"images": karpathy, "dataset": "coco"})
    for folder, document in annotations.items():
        _dump(root / "COCO_2014" / "annotations" / f"captions_{folder}.json", {"info": {}, **document})
    for part, listed in spoken.items():
        _dump(root / "SpokenCOCO" / f"SpokenCOCO_{part}.json", {"data": listed})


def _dump(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
