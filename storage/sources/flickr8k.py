"""Flickr8k (token file or Kaggle CSV, split lists or Karpathy file) + Flickr Audio Caption Corpus."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

from pydantic import Field

from storage.errors import SourceFormatError
from storage.sources.files import annotation_file, clean_text, read_lines, under
from storage.sources.karpathy import read_karpathy
from storage.sources.records import REJECTED, CaptionRecord, ImageRecord, SourceListing, UtteranceRecord, reject
from storage.sources.source import DatasetSource, SourceSpec

_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
_IMAGE_DIRS = ("Flicker8k_Dataset", "Images")


class Flickr8kSpec(SourceSpec):
    """Flickr8k images and captions, optional Karpathy split file, optional Flickr Audio speech."""

    kind: Literal["flickr8k"] = "flickr8k"
    images: str | None = Field(None, description="Image folder; default Flicker8k_Dataset/ or Images/.")
    text: str = Field("Flickr8k_text", description="Folder with Flickr8k.token.txt and Flickr_8k.*Images.txt.")
    captions_csv: str | None = Field(None, description="Kaggle captions.txt (image,caption) instead of token.txt.")
    karpathy: str | None = Field(None, description="dataset_flickr8k.json; splits come from it when given.")
    speech: str | None = Field("flickr_audio", description="Flickr Audio folder (wavs/, wav2capt.txt, wav2spk.txt).")


def list_flickr8k(name: str, spec: Flickr8kSpec) -> SourceListing:
    """List a Flickr8k dataset's images, captions and utterances from its annotation files.

    Args:
        name: Dataset name used in the store.
        spec: Where the dataset lives.

    Raises:
        SourceFormatError: If an annotation file is missing or cannot be parsed.
    """
    root = spec.root
    images_dir = spec.images or next((d for d in _IMAGE_DIRS if (root / d).is_dir()), _IMAGE_DIRS[0])
    listing = SourceListing(dataset=name, media_dirs=[images_dir])
    listed: list[tuple[str, str, str]] = []  # (file name, split, problem)
    if spec.karpathy:
        listing.inputs.append(spec.karpathy)
        listed = [(Path(e.relpath).name, e.split, e.problem) for e in read_karpathy(root / spec.karpathy)]
    else:
        for split, filename in _SPLIT_FILES.items():
            listing.inputs.append(f"{spec.text}/{filename}")
            path = annotation_file(root, spec.text, filename, f"datasets.{name}.text")
            listed += [(line.strip(), split, "") for line in read_lines(path) if line.strip()]
    splits: dict[str, set[str]] = {}
    for filename, split, _ in listed:
        splits.setdefault(filename, set()).add(split)
    for filename, split, problem in listed:
        image = ImageRecord(id=Path(filename).stem, split=split, path=under(images_dir, filename), base=images_dir)
        if problem:
            reject(image, problem)
        elif len(splits[filename]) > 1:  # train/test leakage: never guess which split wins
            reject(image, f"image in several splits: {filename!r} is listed in {', '.join(sorted(splits[filename]))}")
        listing.images.append(image)
    if spec.captions_csv:
        listing.inputs.append(spec.captions_csv)
        listing.captions.extend(_kaggle_captions(root / spec.captions_csv))
    else:
        listing.inputs.append(f"{spec.text}/Flickr8k.token.txt")
        token = annotation_file(root, spec.text, "Flickr8k.token.txt", f"datasets.{name}.text")
        listing.captions.extend(_token_captions(token))
    if spec.speech:
        listing.media_dirs.append(spec.speech)
        listing.inputs.extend([f"{spec.speech}/wav2capt.txt", f"{spec.speech}/wav2spk.txt"])
        listing.utterances.extend(_flickr_audio(root, spec.speech, listing.captions, f"datasets.{name}.speech"))
    listing.link()
    return listing


def _caption(filename: str, number: str, text: str) -> CaptionRecord:
    # Caption ids are "<image file>#<n>", the key Flickr8k.token.txt and wav2capt.txt both use.
    return CaptionRecord(id=f"{filename}#{number}", image_id=Path(filename).stem, split="", text=clean_text(text))


def _token_captions(path: Path) -> list[CaptionRecord]:
    captions = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        key, tab, text = line.partition("\t")
        filename, hash_, index = key.rpartition("#")
        if not tab or not hash_ or not filename:
            record = CaptionRecord(id=f"{path.name}:{number}", image_id="", split="", text=line)
            record.status, record.reason = (
                REJECTED,
                f"malformed line: {path.name} line {number}, expected '<image>#<n><TAB><caption>'",
            )
            captions.append(record)
            continue
        captions.append(_caption(filename, index, text))
    return captions


def _kaggle_captions(path: Path) -> list[CaptionRecord]:
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    except FileNotFoundError as error:
        raise SourceFormatError(f"{path}: file not found; check the dataset paths in the config") from error
    except csv.Error as error:
        raise SourceFormatError(f"{path}: invalid CSV ({error})") from error
    if rows and not {"image", "caption"} <= set(rows[0]):
        raise SourceFormatError(f"{path}:1: expected the header 'image,caption'")
    counters: dict[str, int] = {}
    captions = []
    for row in rows:
        filename = row["image"] or ""
        index = counters.get(filename, 0)
        counters[filename] = index + 1
        captions.append(_caption(filename, str(index), row["caption"] or ""))
    return captions


def _flickr_audio(root: Path, speech: str, captions: list[CaptionRecord], key: str) -> list[UtteranceRecord]:
    texts = {c.id: c.text for c in captions}
    speakers: dict[str, str] = {}
    for line in read_lines(annotation_file(root, speech, "wav2spk.txt", key)):
        wav, _, speaker = line.strip().partition(" ")
        if wav:
            speakers[wav] = speaker.strip()
    utterances = []
    for number, line in enumerate(read_lines(annotation_file(root, speech, "wav2capt.txt", key)), start=1):
        parts = line.split()
        if not parts:
            continue
        wav = parts[0]
        record = UtteranceRecord(
            id=Path(wav).stem,
            image_id="",
            split="",
            path=under(f"{speech}/wavs", wav),
            base=f"{speech}/wavs",
            text="",
            speaker=speakers.get(wav, ""),
        )
        if len(parts) != 3 or not parts[2].startswith("#"):
            record.status, record.reason = (
                REJECTED,
                f"malformed line: wav2capt.txt line {number}, expected '<wav> <image> #<n>'",
            )
        else:
            # Map by this file, never by the wav's name: the names do not always match the captions.
            record.image_id = Path(parts[1]).stem
            key = f"{parts[1]}{parts[2]}"
            record.text = texts.get(key, "")
            if key not in texts:
                reject(record, f"caption key without a caption: {key!r} is not in the captions file")
        utterances.append(record)
    return utterances


def _media_roots(spec: Flickr8kSpec) -> dict[str, str]:
    # The configured image folder, or the dataset root when it is found by looking (Flicker8k_Dataset/, Images/).
    return {"image": str(spec.root / (spec.images or "")), "speech": str(spec.root / (spec.speech or ""))}


SOURCE = DatasetSource(
    Flickr8kSpec,
    list_flickr8k,
    _media_roots,
    config_keys={"images": "images", "captions": "text", "utterances": "speech"},
)
