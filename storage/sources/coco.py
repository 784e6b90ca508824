"""COCO 2014 + Karpathy split + COCO caption annotations + SpokenCOCO, in their public layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from storage.errors import SourceFormatError
from storage.sources.files import annotation_file, clean_text, load_json, require_keys, under
from storage.sources.karpathy import read_karpathy
from storage.sources.records import CaptionRecord, ImageRecord, SourceListing, UtteranceRecord, reject
from storage.sources.source import DatasetSource, SourceSpec

_COCO_FOLDERS = ("train2014", "val2014")


class CocoSpec(SourceSpec):
    """COCO 2014 images, Karpathy split file, optional COCO caption annotations and SpokenCOCO speech."""

    kind: Literal["coco"] = "coco"
    images: str = Field("COCO_2014", description="Folder holding train2014/ and val2014/.")
    annotations: str | None = Field(
        "COCO_2014/annotations",
        description="Folder with captions_{train,val}2014.json; captions come "
        "from here when present, else from the Karpathy file.",
    )
    karpathy: str = Field("karpathy/dataset_coco.json", description="Karpathy split file.")
    speech: str | None = Field("SpokenCOCO", description="SpokenCOCO folder (SpokenCOCO_{train,val}.json, wavs/).")


def list_coco(name: str, spec: CocoSpec) -> SourceListing:
    """List a COCO dataset's images, captions and utterances from its annotation files.

    Images and splits come from the Karpathy file; captions from ``captions_{train,val}2014.json`` when the
    annotations folder exists, else from the Karpathy sentences; speech from SpokenCOCO when configured.

    Args:
        name: Dataset name used in the store.
        spec: Where the dataset lives.

    Raises:
        SourceFormatError: If an annotation file cannot be parsed.
    """
    root = spec.root
    listing = SourceListing(dataset=name, media_dirs=[spec.images])
    listing.inputs.append(spec.karpathy)
    karpathy = read_karpathy(root / spec.karpathy)
    by_file: dict[str, str] = {}
    for entry in karpathy:
        image = ImageRecord(
            id=entry.image_id, split=entry.split, path=under(spec.images, entry.relpath), base=spec.images
        )
        if entry.problem:
            reject(image, entry.problem)
        listing.images.append(image)
        by_file[entry.relpath] = entry.image_id
    annotations = root / spec.annotations if spec.annotations else None
    if annotations is not None and annotations.is_dir():
        for folder in _COCO_FOLDERS:
            path = annotation_file(
                root, spec.annotations or "", f"captions_{folder}.json", f"datasets.{name}.annotations"
            )
            if path.exists():
                listing.inputs.append(f"{spec.annotations}/{path.name}")
                listing.captions.extend(_annotation_captions(path))
    else:
        for entry in karpathy:
            listing.captions.extend(
                CaptionRecord(id=sentid, image_id=entry.image_id, split=entry.split, text=raw)
                for sentid, raw in entry.sentences
            )
    if spec.speech and (root / spec.speech).is_dir():  # no such folder: a dataset without speech
        listing.media_dirs.append(spec.speech)
        for folder in ("train", "val"):
            path = annotation_file(root, spec.speech, f"SpokenCOCO_{folder}.json", f"datasets.{name}.speech")
            if path.exists():
                listing.inputs.append(f"{spec.speech}/{path.name}")
                listing.utterances.extend(_spoken_coco(path, spec.speech, by_file))
        # A folder holding no SpokenCOCO list is the wrong folder, not "no speech".
        if not any(read.startswith(f"{spec.speech}/") for read in listing.inputs):
            raise SourceFormatError(
                f"{root / spec.speech}: no SpokenCOCO_train.json or SpokenCOCO_val.json; point "
                f"datasets.{name}.speech at the SpokenCOCO folder (or set it to null for no speech)"
            )
    listing.link()
    return listing


def _annotation_captions(path: Path) -> list[CaptionRecord]:
    document = require_keys(load_json(path), ("annotations",), str(path))
    captions = []
    for index, raw in enumerate(document["annotations"]):
        item = require_keys(raw, ("image_id", "id", "caption"), f"{path}: annotations[{index}]")
        captions.append(
            CaptionRecord(
                id=str(item["id"]), image_id=str(item["image_id"]), split="", text=clean_text(item["caption"])
            )
        )
    return captions


def _spoken_coco(path: Path, speech_dir: str, by_file: dict[str, str]) -> list[UtteranceRecord]:
    document = require_keys(load_json(path), ("data",), str(path))
    utterances = []
    for index, raw in enumerate(document["data"]):
        entry = require_keys(raw, ("image", "captions"), f"{path}: data[{index}]")
        image_id = by_file.get(str(entry["image"]), f"file:{entry['image']}")
        for n, item in enumerate(entry["captions"]):
            where = f"{path.name}: data[{index}].captions[{n}]"
            if not isinstance(item, dict):
                item = {}
            missing = [k for k in ("uttid", "wav", "text") if k not in item]
            record = UtteranceRecord(
                id=str(item.get("uttid", where)),
                image_id=image_id,
                split="",
                path=under(speech_dir, str(item.get("wav", ""))),
                base=speech_dir,
                text=clean_text(item.get("text", "")),
                speaker=str(item.get("speaker", "")),
            )
            if missing:  # listed, and rejected with the reason: one bad entry never fails the dataset
                reject(record, f"malformed entry: {where} is missing key(s) {missing}")
            utterances.append(record)
    return utterances


def _media_roots(spec: CocoSpec) -> dict[str, str]:
    return {"image": str(spec.root / spec.images), "speech": str(spec.root / (spec.speech or ""))}


SOURCE = DatasetSource(
    CocoSpec,
    list_coco,
    _media_roots,
    config_keys={"images": "images", "captions": "annotations", "utterances": "speech"},
)
