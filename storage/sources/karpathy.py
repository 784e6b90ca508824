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


def read_karpathy(path: Path) -> list[KarpathyImage]:
    """Parse a Karpathy split file; COCO ids are ``cocoid``, Flickr ids are the file name's stem.

    Raises:
        SourceFormatError: If the file is not valid JSON or lacks the keys of the format.
    """
    document = require_keys(load_json(path), ("images",), str(path))
    entries: list[KarpathyImage] = []
    for index, raw in enumerate(document["images"]):
        where = f"{path}: images[{index}]"
        item = require_keys(raw, ("filename", "split"), where)
        if item["split"] not in SPLITS:
            raise SourceFormatError(f"{where}: unknown split {item['split']!r} (expected one of {SPLITS})")
        filename = str(item["filename"])
        relpath = f"{item['filepath']}/{filename}" if item.get("filepath") else filename
        image_id = str(item["cocoid"]) if "cocoid" in item else Path(filename).stem
        sentences = tuple(
            (str(s.get("sentid", f"{image_id}#{n}")), clean_text(s.get("raw", "")))
            for n, s in enumerate(item.get("sentences", []))
        )
        entries.append(KarpathyImage(image_id, str(item["split"]), relpath, sentences))
    return entries
