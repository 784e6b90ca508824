"""Karpathy split files (``dataset_coco.json``, ``dataset_flickr8k.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.errors import SourceFormatError
from storage.sources.files import clean_text, load_json, require_keys

SPLITS = ("train", "restval", "val", "test")


@dataclass(frozen=True)
class KarpathyImage:
    """One image entry of a Karpathy file."""

    image_id: str
    split: str
    relpath: str
    sentences: tuple[tuple[str, str], ...]  # (sentid, raw)
    problem: str = ""  # why the entry cannot be used (it is listed, and rejected with this reason)


def read_karpathy(path: Path) -> list[KarpathyImage]:
    """Parse a Karpathy split file; COCO ids are ``cocoid``, Flickr ids are the file name's stem.

    A malformed entry (not an object, no file name, an unknown split) is returned with a ``problem``, so it
    is listed and rejected with that reason instead of failing the whole dataset.

    Raises:
        SourceFormatError: If the file is not valid JSON or has no ``images`` list.
    """
    document = require_keys(load_json(path), ("images",), str(path))
    if not isinstance(document["images"], list):
        raise SourceFormatError(f"{path}: 'images' is not a list")
    return [_entry(raw, f"{path.name}: images[{index}]") for index, raw in enumerate(document["images"])]


def _entry(raw: object, where: str) -> KarpathyImage:
    if not isinstance(raw, dict) or not isinstance(raw.get("filename"), str) or not raw["filename"]:
        return KarpathyImage(where, "", "", (), f"malformed entry: {where} has no file name")
    filename = raw["filename"]
    folder = raw.get("filepath")
    relpath = f"{folder}/{filename}" if isinstance(folder, str) and folder else filename
    image_id = str(raw["cocoid"]) if "cocoid" in raw else Path(filename).stem
    sentences_raw = raw.get("sentences", [])
    sentences = tuple(
        (str(s.get("sentid", f"{image_id}#{n}")), clean_text(s.get("raw", "")))
        for n, s in enumerate(sentences_raw if isinstance(sentences_raw, list) else [])
        if isinstance(s, dict)
    )
    split = raw.get("split")
    problem = ""
    if "split" not in raw:
        problem = f"malformed entry: {where} is missing key(s) ['split']"
    elif split not in SPLITS:
        problem = f"unknown split {split!r} in {where} (expected one of {', '.join(SPLITS)})"
    return KarpathyImage(image_id, str(split or ""), relpath, sentences, problem)
