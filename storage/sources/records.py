"""Rows of the manifests: what a source lists, and what the manifest builder learns about each file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from storage.sources.files import NOT_TEXT, text_problem

OK = "ok"
REJECTED = "rejected"


@dataclass(slots=True)
class ImageRecord:
    """One image a dataset lists."""

    id: str
    split: str
    path: str
    status: str = OK
    reason: str = ""
    bytes: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    #: The configured folder ``path`` was listed in (relative to the dataset root): what the path must stay inside.
    base: str = ""


@dataclass(slots=True)
class CaptionRecord:
    """One text caption of an image."""

    id: str
    image_id: str
    split: str
    text: str
    status: str = OK
    reason: str = ""


@dataclass(slots=True)
class UtteranceRecord:
    """One spoken caption (a wav file) of an image."""

    id: str
    image_id: str
    split: str
    path: str
    text: str
    speaker: str
    status: str = OK
    reason: str = ""
    bytes: int | None = None
    sha256: str | None = None
    duration: float | None = None
    sample_rate: int | None = None
    #: The configured folder ``path`` was listed in (relative to the dataset root): what the path must stay inside.
    base: str = ""


class _Record(Protocol):
    id: str
    status: str
    reason: str


def reject(record: _Record, reason: str) -> None:
    """Mark a record rejected, keeping the first reason if it already was."""
    if record.status == OK:
        record.status = REJECTED
        record.reason = reason


def reject_duplicates(records: Iterable[_Record], what: str) -> None:
    """Reject every record whose id was already seen (the first one stays)."""
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            reject(record, f"duplicate id: {what} {record.id!r} is listed more than once")
        seen.add(record.id)


@dataclass(slots=True)
class SourceListing:
    """Everything a dataset's annotation files list, before any media file is opened.

    Attributes:
        dataset: Dataset name.
        images: Listed images.
        captions: Listed text captions.
        utterances: Listed spoken captions.
        inputs: Annotation files read (paths relative to the dataset root): part of the input fingerprint.
        media_dirs: Folders (relative to the root) holding the media files.
    """

    dataset: str
    images: list[ImageRecord] = field(default_factory=list)
    captions: list[CaptionRecord] = field(default_factory=list)
    utterances: list[UtteranceRecord] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    media_dirs: list[str] = field(default_factory=list)

    def link(self) -> None:
        """Reject duplicates and captions/utterances whose image is not listed; give them its split."""
        reject_duplicates(self.images, "image")
        reject_duplicates(self.captions, "caption")
        reject_duplicates(self.utterances, "utterance")
        splits = {image.id: image.split for image in self.images if image.status == OK}
        linked: list[CaptionRecord | UtteranceRecord] = [*self.captions, *self.utterances]
        for item in linked:
            if item.image_id not in splits:
                reject(item, f"caption key without an image: no listed image {item.image_id!r}")
            elif not item.split:
                item.split = splits[item.image_id]
            problem = text_problem(item.text)
            if problem:
                reject(item, problem)
                if item.text.startswith(NOT_TEXT):
                    item.text = ""
