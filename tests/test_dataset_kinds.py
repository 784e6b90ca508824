"""The dataset-kind recipe: one module (spec + listing + ``SOURCE``) registered, and manifests build through it.

The third kind here, ``image-csv`` (a folder of images and a ``captions.csv``), is what a new kind's module
holds; everything after ``register_source`` is the pipeline's own code asking the registry.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal, get_args

import pytest
from pydantic import Field

from storage.errors import ConfigError, TooManyRejectedError
from storage.manifests import build_manifests, list_source, read_table
from storage.sources.files import under
from storage.sources.records import OK, CaptionRecord, ImageRecord, SourceListing, reject
from storage.sources.registry import BUILT_IN, DatasetSpec, register_source, registered, source_of
from storage.sources.source import DatasetSource, SourceSpec
from storage.sources.spec import CocoSpec, Flickr8kSpec
from storage.store import Store
from storage.versions import current_version
from tests.tiny_datasets import write_image


# --- the new kind's module: its spec, its listing function, its SOURCE ---------------------------------------
class ImageCsvSpec(SourceSpec):
    """A folder of images and a CSV of ``file,split,caption`` rows."""

    kind: Literal["image-csv"] = "image-csv"
    images: str = Field("images", description="Image folder.")
    captions: str = Field("captions.csv", description="CSV with a header file,split,caption.")


def list_image_csv(name: str, spec: ImageCsvSpec) -> SourceListing:
    """List the images the CSV names (one per distinct file) and one caption per row."""
    listing = SourceListing(dataset=name, media_dirs=[spec.images], inputs=[spec.captions])
    with (spec.root / spec.captions).open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    seen: set[str] = set()
    for number, row in enumerate(rows):
        image_id = Path(row["file"]).stem
        if row["file"] not in seen:
            seen.add(row["file"])
            image = ImageRecord(id=image_id, split=row["split"], path=under(spec.images, row["file"]), base=spec.images)
            if row["split"] not in ("train", "val", "test"):
                reject(image, f"unknown split: {row['split']!r}")
            listing.images.append(image)
        listing.captions.append(
            CaptionRecord(id=f"{image_id}#{number}", image_id=image_id, split="", text=row["caption"])
        )
    listing.link()
    return listing


SOURCE = DatasetSource(
    ImageCsvSpec,
    list_image_csv,
    lambda spec: {"image": str(spec.root / spec.images), "speech": ""},
    config_keys={"images": "images", "captions": "captions"},
)
# ---------------------------------------------------------------------------------------------------------------


def _dataset(root: Path, rows: list[tuple[str, str, str]]) -> ImageCsvSpec:
    (root / "images").mkdir(parents=True)
    for seed, (file, _, _) in enumerate(rows):
        if not (root / "images" / file).exists():
            write_image(root / "images" / file, seed)
    with (root / "captions.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file", "split", "caption"])
        writer.writerows(rows)
    return ImageCsvSpec(root=root)


@pytest.fixture(autouse=True)
def _registered() -> None:
    register_source(SOURCE)  # the one registration line (built-in kinds: BUILT_IN in storage/sources/registry.py)


def test_manifests_of_a_registered_third_kind_are_built_through_the_registry(tmp_path: Path) -> None:
    rows = [("a.png", "train", "A red square."), ("a.png", "train", "Red."), ("b.png", "test", "A blue one.")]
    spec = _dataset(tmp_path / "data", rows)
    result = build_manifests(Store(str(tmp_path / "store")), "shapes", spec, shard_size=2, workers=1)
    assert result.counts["images"] == {"listed": 2, "ok": 2, "rejected": 0}
    assert result.counts["captions"] == {"listed": 3, "ok": 3, "rejected": 0}
    assert result.counts["utterances"] == {"listed": 0, "ok": 0, "rejected": 0}
    current = current_version(Store(str(tmp_path / "store")), "shapes", "manifests")
    assert current is not None and current.version == result.version
    images = read_table(current, "images").to_pylist()
    assert [(r["id"], r["split"], r["status"], r["width"]) for r in images] == [
        ("a", "train", OK, 8),
        ("b", "test", OK, 8),
    ]
    assert source_of(spec).media_roots(spec)["image"] == str(tmp_path / "data" / "images")
    rerun = build_manifests(Store(str(tmp_path / "store")), "shapes", spec, shard_size=2, workers=1)
    assert rerun.skipped and rerun.version == result.version


def test_the_rejection_limit_names_the_new_kinds_own_config_key(tmp_path: Path) -> None:
    spec = _dataset(tmp_path / "data", [("a.png", "holdout", "A square."), ("b.png", "holdout", "Another.")])
    with pytest.raises(TooManyRejectedError, match=r"check datasets\.shapes\.images"):
        build_manifests(Store(str(tmp_path / "store")), "shapes", spec, shard_size=2, workers=1)


def test_every_built_in_kind_is_in_the_config_union_and_registered() -> None:
    (union, _) = get_args(DatasetSpec)
    assert get_args(union) == tuple(source.spec for source in BUILT_IN) == (CocoSpec, Flickr8kSpec)
    assert [source.kind for source in registered()][:2] == ["coco", "flickr8k"]
    assert list_source.__doc__ and "registry" in list_source.__doc__


def test_an_unregistered_spec_or_a_taken_kind_name_is_refused(tmp_path: Path) -> None:
    class Stray(SourceSpec):
        kind: Literal["coco"] = "coco"

    with pytest.raises(ConfigError, match="not a registered dataset kind"):
        source_of(Stray(root=tmp_path))
    with pytest.raises(ConfigError, match="'coco' is already registered by CocoSpec"):
        register_source(DatasetSource(Stray, lambda name, spec: SourceListing(name), lambda spec: {}, {}))
