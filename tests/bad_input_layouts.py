"""The bad-input corpus's building blocks: kinds, targets, file payloads, and the two dataset layouts.

Layouts: COCO 2014 + Karpathy + SpokenCOCO, and Flickr8k + Flickr Audio, written as real datasets with a few
good items each so the codebooks can be learned. ``build_corpus(root, kinds)`` writes every kind into shared
datasets (``coco``, ``flickr``); a kind whose damage spoils a whole annotation file gets a dataset of its own,
so it cannot hide the other kinds. The kinds themselves are in ``tests/bad_inputs.py``.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile
from PIL import Image

from tests.tiny_datasets import coco_entry, write_image

Modality = Literal["image", "audio", "annotation"]
Expected = Literal["rejected", "stored"]
Table = Literal["images", "captions", "utterances"]
RATE = 16_000


@dataclass(frozen=True)
class Target:
    """One manifest row a kind damaged; ``occurrence`` picks among rows sharing an id (duplicates)."""

    dataset: str
    table: Table
    item_id: str
    occurrence: int = 0


@dataclass(frozen=True)
class Kind:
    """One named way an input can be damaged (or be valid but unusual), and what the pipeline should do.

    Attributes:
        name: Kebab-case name, unique in the corpus.
        modality: What is damaged.
        expected: ``rejected`` (with a reason naming the problem) or ``stored``.
        build: Writes the item(s) into the corpus; returns the rows to check.
        words: For rejected kinds: every recorded reason must contain one of these (case-insensitive).
    """

    name: str
    modality: Modality
    expected: Expected
    build: Callable[[Corpus], list[Target]]
    words: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- file payloads


def photo(seed: int = 0, size: tuple[int, int] = (24, 16)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose IHDR (with a valid CRC) declares other dimensions: a decompression-bomb header."""
    data = bytearray(encoded(Image.new("RGB", (10, 10)), "PNG"))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90°
    return encoded(photo(3), "JPEG", exif=exif.tobytes())


def bad_crc_png() -> bytes:
    data = bytearray(encoded(photo(4), "PNG"))
    data[30] ^= 0xFF  # inside the IHDR CRC
    return bytes(data)


def wav_bytes(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


def tone(seconds: float = 0.5, rate: int = RATE, pitch: float = 300.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def zero_rate_wav() -> bytes:
    data = bytearray(wav_bytes(tone()))
    data[24:28] = struct.pack("<I", 0)  # the fmt chunk's sample rate
    return bytes(data)


# ---------------------------------------------------------------------------------------------- layouts


class CocoLayout:
    """A COCO dataset being written: Karpathy entries, image files and SpokenCOCO utterances.

    Captions come from the Karpathy sentences (no ``annotations/`` folder), as in the sample data.
    """

    def __init__(self, name: str, root: Path, good: int) -> None:
        self.name = name
        self.root = root
        self.entries: list[dict[str, Any]] = []
        self.spoken: dict[str, dict[str, dict[str, Any]]] = {"train": {}, "val": {}}
        self._next = 1000
        self.host = ""
        for index in range(good):
            image = self.image(payload=None, captions=[f"A good photo number {index}."], good=True)
            self.utterance(image, wav_bytes(tone(pitch=200.0 + 90 * index)))
            self.host = self.host or image

    def _id(self) -> int:
        self._next += 1
        return self._next

    def relpath(self, image_id: str) -> str:
        """The Karpathy ``filepath/filename`` of a listed image."""
        entry = next(e for e in self.entries if str(e["cocoid"]) == image_id)
        return f"{entry['filepath']}/{entry['filename']}"

    def image(
        self,
        payload: bytes | None,
        *,
        split: str = "train",
        captions: tuple[str, ...] | list[str] = (),
        filename: str | None = None,
        cocoid: int | None = None,
        good: bool = False,
    ) -> str:
        """Add a Karpathy entry; write ``payload`` as its file (a good 8×8 JPEG when ``good``). Returns its id."""
        number = cocoid if cocoid is not None else self._id()
        entry = coco_entry(number, split, list(captions))
        if filename is not None:
            entry["filename"] = filename
        self.entries.append(entry)
        path = self.root / "COCO_2014" / entry["filepath"] / entry["filename"]
        if good:
            write_image(path, number)
        elif payload is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        return str(number)

    def image_dir(self, split: str = "train") -> Path:
        """The folder Karpathy ``filepath`` entries of ``split`` point into."""
        folder = self.root / "COCO_2014" / ("train2014" if split == "train" else "val2014")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def utterance(
        self,
        image_id: str,
        payload: bytes | None,
        *,
        text: str = "A SPOKEN CAPTION",
        uttid: str | None = None,
        wav: str | None = None,
        image_file: str | None = None,
    ) -> str:
        """Add a SpokenCOCO caption of a listed image (or of ``image_file``); write its wav. Returns its id."""
        uttid = uttid or f"spk-{self._id()}"
        wav = wav or f"wavs/train/0/{uttid}.wav"
        image = image_file or self.relpath(image_id)
        part = "val" if image.startswith("val2014") else "train"
        entry = self.spoken[part].setdefault(image, {"image": image, "captions": []})
        entry["captions"].append({"text": text, "speaker": "spk", "uttid": uttid, "wav": wav})
        if payload is not None:
            path = self.root / "SpokenCOCO" / wav
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        return uttid

    def sentence(self, image_id: str) -> dict[str, Any]:
        """The first Karpathy sentence of an image (for kinds that damage it in place)."""
        entry = next(e for e in self.entries if str(e["cocoid"]) == image_id)
        sentence: dict[str, Any] = entry["sentences"][0]
        return sentence

    def listed(self) -> dict[Table, int]:
        """How many rows of each table the annotation files list."""
        spoken = sum(len(e["captions"]) for part in self.spoken.values() for e in part.values())
        return {
            "images": len(self.entries),
            "captions": sum(len(e["sentences"]) for e in self.entries),
            "utterances": spoken,
        }

    def finish(self) -> None:
        """Write the Karpathy file and SpokenCOCO_{train,val}.json."""
        (self.root / "karpathy").mkdir(parents=True, exist_ok=True)
        document = {"images": self.entries, "dataset": "coco"}
        (self.root / "karpathy" / "dataset_coco.json").write_text(json.dumps(document))
        (self.root / "SpokenCOCO").mkdir(parents=True, exist_ok=True)
        for part, entries in self.spoken.items():
            spoken = json.dumps({"data": list(entries.values())})
            (self.root / "SpokenCOCO" / f"SpokenCOCO_{part}.json").write_text(spoken)


_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


class FlickrLayout:
    """A Flickr8k dataset being written: split lists, token file, Flicker8k_Dataset/, flickr_audio/."""

    def __init__(self, name: str, root: Path, good: int) -> None:
        self.name = name
        self.root = root
        self.splits: dict[str, list[str]] = {split: [] for split in _SPLIT_FILES}
        self.tokens: list[bytes] = []
        self.wav2capt: list[str] = []
        self.host = ""
        for index in range(good):
            filename = self.image(f"good_{index}.jpg", None, good=True)
            self.caption(filename, f"A good Flickr photo {index}.")
            self.utterance(f"good_{index}_0.wav", filename, 0, wav_bytes(tone(pitch=250.0 + 80 * index)))
            self.host = self.host or filename

    def image(self, filename: str, payload: bytes | None, *, split: str = "train", good: bool = False) -> str:
        """List ``filename`` in a split file and write its file. Returns the file name."""
        self.splits[split].append(filename)
        path = self.root / "Flicker8k_Dataset" / filename
        if good:
            write_image(path, len(filename) + sum(map(ord, filename)))
        elif payload is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        return filename

    def caption(self, filename: str, text: str, number: int = 0) -> str:
        """Add a token.txt line; returns the caption id."""
        return self.token_line(f"{filename}#{number}\t{text}".encode(), f"{filename}#{number}")

    def token_line(self, line: bytes, caption_id: str | None = None) -> str:
        """Add a raw token.txt line; returns its caption id (``Flickr8k.token.txt:<line>`` when malformed)."""
        self.tokens.append(line)
        return caption_id or f"Flickr8k.token.txt:{len(self.tokens)}"

    def utterance(self, wav: str, filename: str, number: int, payload: bytes | None) -> str:
        """Add a wav2capt.txt line and write the wav; returns the utterance id."""
        return self.wav2capt_line(f"{wav} {filename} #{number}", payload)

    def wav2capt_line(self, line: str, payload: bytes | None) -> str:
        """Add a raw wav2capt.txt line and write its wav (first field); returns the utterance id."""
        self.wav2capt.append(line)
        wav = line.split()[0]
        if payload is not None:
            path = self.root / "flickr_audio" / "wavs" / wav
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        return Path(wav).stem

    def listed(self) -> dict[Table, int]:
        """How many rows of each table the annotation files list."""
        return {
            "images": sum(len(files) for files in self.splits.values()),
            "captions": sum(1 for line in self.tokens if line.strip()),
            "utterances": sum(1 for line in self.wav2capt if line.strip()),
        }

    def finish(self) -> None:
        """Write the split lists, token file, wav2capt.txt and wav2spk.txt."""
        text = self.root / "Flickr8k_text"
        text.mkdir(parents=True, exist_ok=True)
        for split, name in _SPLIT_FILES.items():
            (text / name).write_text("".join(f"{f}\n" for f in self.splits[split]))
        (text / "Flickr8k.token.txt").write_bytes(b"\n".join(self.tokens) + b"\n")
        audio = self.root / "flickr_audio"
        audio.mkdir(parents=True, exist_ok=True)
        (audio / "wav2capt.txt").write_text("\n".join(self.wav2capt) + "\n")
        (audio / "wav2spk.txt").write_text("".join(f"{line.split()[0]} 3\n" for line in self.wav2capt))


class Corpus:
    """The datasets being written under ``root``; kinds add their items, ``finish`` writes the annotation files.

    Attributes:
        root: Parent folder of every dataset root.
        outside: A folder outside every dataset root (targets of ``..``, absolute paths and symlinks).
        layouts: Datasets by name.
        after_manifests: Changes to make after build-manifests (files edited or deleted under the pipeline).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.outside = root / "outside"
        self.outside.mkdir(parents=True, exist_ok=True)
        self.layouts: dict[str, CocoLayout | FlickrLayout] = {}
        self.after_manifests: list[Callable[[], None]] = []

    def coco(self, name: str = "coco", good: int = 4) -> CocoLayout:
        """The COCO dataset ``name`` (created with ``good`` good images, each with a caption and a wav)."""
        if name not in self.layouts:
            self.layouts[name] = CocoLayout(name, self.root / name, good)
        layout = self.layouts[name]
        assert isinstance(layout, CocoLayout)
        return layout

    def flickr(self, name: str = "flickr", good: int = 3) -> FlickrLayout:
        """The Flickr8k dataset ``name`` (created with ``good`` good images, each with a caption and a wav)."""
        if name not in self.layouts:
            self.layouts[name] = FlickrLayout(name, self.root / name, good)
        layout = self.layouts[name]
        assert isinstance(layout, FlickrLayout)
        return layout

    def outside_file(self, name: str, payload: bytes) -> Path:
        """Write a perfectly good file outside every dataset root."""
        path = self.outside / name
        path.write_bytes(payload)
        return path

    def dataset_specs(self) -> dict[str, dict[str, str | float]]:
        """The config's ``datasets`` section for every layout (mostly bad items on purpose: no rejection limit)."""
        return {
            name: {
                "kind": "coco" if isinstance(layout, CocoLayout) else "flickr8k",
                "root": name,
                "max_rejected_fraction": 1.0,
            }
            for name, layout in self.layouts.items()
        }

    def listed(self) -> dict[tuple[str, Table], int]:
        """Rows each dataset's annotation files list, by (dataset, table)."""
        return {(name, table): n for name, layout in self.layouts.items() for table, n in layout.listed().items()}


def build_corpus(root: Path, kinds: list[Kind]) -> tuple[Corpus, dict[str, list[Target]]]:
    """Write every kind's item(s) under ``root``; return the corpus and each kind's targets by name."""
    corpus = Corpus(root)
    corpus.coco()
    corpus.flickr()
    targets = {kind.name: kind.build(corpus) for kind in kinds}
    for layout in corpus.layouts.values():
        layout.finish()
    return corpus, targets
