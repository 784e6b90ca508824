"""A bad-input corpus: tiny COCO and Flickr8k datasets (real layouts) whose items are each damaged in one named way.

Layouts: COCO 2014 + Karpathy + SpokenCOCO, and Flickr8k + Flickr Audio. Each :class:`Kind` damages its item(s)
in one way, or writes a valid but unusual one; a few good items per dataset let the codebooks be learned.
``build_corpus(root, KINDS)`` writes every kind into shared datasets (``coco``, ``flickr``); a kind whose damage
spoils a whole annotation file gets a dataset of its own, so it cannot hide the other kinds. Each build returns
the :class:`Target` rows (dataset, manifest table, id) whose outcome the test checks.
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


def _photo(seed: int = 0, size: tuple[int, int] = (24, 16)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose IHDR (with a valid CRC) declares other dimensions: a decompression-bomb header."""
    data = bytearray(_save(Image.new("RGB", (10, 10)), "PNG"))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90°
    return _save(_photo(3), "JPEG", exif=exif.tobytes())


def _bad_crc_png() -> bytes:
    data = bytearray(_save(_photo(4), "PNG"))
    data[30] ^= 0xFF  # inside the IHDR CRC
    return bytes(data)


def _wav(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


def _tone(seconds: float = 0.5, rate: int = RATE, pitch: float = 300.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def _zero_rate_wav() -> bytes:
    data = bytearray(_wav(_tone()))
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
            self.utterance(image, _wav(_tone(pitch=200.0 + 90 * index)))
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
            self.utterance(f"good_{index}_0.wav", filename, 0, _wav(_tone(pitch=250.0 + 80 * index)))
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

    def dataset_specs(self) -> dict[str, dict[str, str]]:
        """The config's ``datasets`` section for every layout."""
        return {
            name: {"kind": "coco" if isinstance(layout, CocoLayout) else "flickr8k", "root": name}
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


# ---------------------------------------------------------------------------------------------- kind builders

Build = Callable[[Corpus], list[Target]]


def coco_image(payload: Callable[[], bytes | None], split: str = "train") -> Build:
    """A COCO image whose file holds ``payload()`` (None: no file)."""

    def build(corpus: Corpus) -> list[Target]:
        coco = corpus.coco()
        return [Target(coco.name, "images", coco.image(payload(), split=split))]

    return build


def coco_wav(payload: Callable[[], bytes | None]) -> Build:
    """A SpokenCOCO utterance whose wav holds ``payload()`` (None: no file)."""

    def build(corpus: Corpus) -> list[Target]:
        coco = corpus.coco()
        return [Target(coco.name, "utterances", coco.utterance(coco.host, payload()))]

    return build


def coco_caption(sentence: Callable[[int], dict[str, Any]]) -> Build:
    """An extra Karpathy sentence of the host image; ``sentence(sentid)`` is the JSON object written."""

    def build(corpus: Corpus) -> list[Target]:
        coco = corpus.coco()
        sentid = coco._id()
        next(e for e in coco.entries if str(e["cocoid"]) == coco.host)["sentences"].append(sentence(sentid))
        return [Target(coco.name, "captions", str(sentid))]

    return build


def raw(text: Any) -> Callable[[int], dict[str, Any]]:
    """A Karpathy sentence with ``raw`` = text (any JSON value)."""
    return lambda sentid: {"tokens": [], "raw": text, "sentid": sentid}


def image_at(filename: Callable[[Corpus], str], make: Callable[[Corpus, Path], None]) -> Build:
    """A COCO image listed as ``filename(corpus)``; ``make(corpus, path)`` creates what its listed path holds."""

    def build(corpus: Corpus) -> list[Target]:
        coco = corpus.coco()
        name = filename(corpus)
        image_id = coco.image(None, filename=name)
        make(corpus, coco.image_dir() / name)
        return [Target(coco.name, "images", image_id)]

    return build


def wav_at(wav: Callable[[Corpus], str], make: Callable[[Corpus, Path], None]) -> Build:
    """A SpokenCOCO utterance listing ``wav(corpus)``; ``make(corpus, path)`` creates what that path holds."""

    def build(corpus: Corpus) -> list[Target]:
        coco = corpus.coco()
        listed = wav(corpus)
        uttid = coco.utterance(coco.host, None, wav=listed)
        make(corpus, coco.root / "SpokenCOCO" / listed)
        return [Target(coco.name, "utterances", uttid)]

    return build


def _symlink(target: Callable[[Corpus], Path]) -> Callable[[Corpus, Path], None]:
    def make(corpus: Corpus, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target(corpus))

    return make


def _directory(corpus: Corpus, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _nothing(corpus: Corpus, path: Path) -> None:
    """The listed path points outside; the file there was written by the kind (or is absent on purpose)."""


def _good_jpeg() -> bytes:
    return _save(_photo(7), "JPEG")


def _good_wav() -> bytes:
    return _wav(_tone(pitch=520.0))


def _image_dotdot(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    corpus.outside_file("dotdot.jpg", _good_jpeg())
    return [Target(coco.name, "images", coco.image(None, filename="../../../outside/dotdot.jpg"))]


def _image_backslash(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    corpus.outside_file("backslash.jpg", _good_jpeg())
    return [Target(coco.name, "images", coco.image(None, filename="..\\..\\..\\outside\\backslash.jpg"))]


def _image_absolute(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    path = corpus.outside_file("absolute.jpg", _good_jpeg())
    image_id = coco.image(None, filename=str(path))
    coco.entries[-1]["filepath"] = ""  # Karpathy relpath = filename, absolute
    return [Target(coco.name, "images", image_id)]


def _image_changed_after_manifest(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    image_id = coco.image(_good_jpeg(), split="val")
    path = coco.root / "COCO_2014" / coco.relpath(image_id)

    def replace() -> None:
        path.write_bytes(_save(_photo(8), "JPEG"))

    corpus.after_manifests.append(replace)
    return [Target(coco.name, "images", image_id)]


def _image_duplicate_id(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    first = coco.image(None, good=True)
    coco.image(_good_jpeg(), cocoid=int(first), filename="COCO_train2014_duplicate.jpg")
    return [Target(coco.name, "images", first, occurrence=1)]


def _isolated_image(dataset: str, filename: str) -> Build:
    """A COCO image listed under a path the OS cannot even stat, in a dataset of its own."""

    def build(corpus: Corpus) -> list[Target]:
        coco = corpus.coco(dataset, good=1)
        return [Target(dataset, "images", coco.image(None, filename=filename))]

    return build


def _wav_dotdot(corpus: Corpus) -> list[Target]:
    corpus.outside_file("dotdot.wav", _good_wav())
    return wav_at(lambda c: "../../outside/dotdot.wav", _nothing)(corpus)


def _wav_absolute(corpus: Corpus) -> list[Target]:
    path = corpus.outside_file("absolute.wav", _good_wav())
    return wav_at(lambda c: str(path), _nothing)(corpus)


def _wav_deleted_after_manifest(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    uttid = coco.utterance(coco.host, _good_wav())
    path = coco.root / "SpokenCOCO" / "wavs" / "train" / "0" / f"{uttid}.wav"
    corpus.after_manifests.append(path.unlink)
    return [Target(coco.name, "utterances", uttid)]


def _utterance_duplicate_id(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    uttid = coco.utterance(coco.host, _good_wav())
    coco.utterance(coco.host, _good_wav(), uttid=uttid, wav=f"wavs/train/0/{uttid}-again.wav")
    return [Target(coco.name, "utterances", uttid, occurrence=1)]


def _utterance_unlisted_image(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    ghost = "train2014/COCO_train2014_000000999999.jpg"
    return [Target(coco.name, "utterances", coco.utterance("", _good_wav(), image_file=ghost))]


def _utterance_empty_text(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    return [Target(coco.name, "utterances", coco.utterance(coco.host, _good_wav(), text=""))]


def _caption_duplicate_id(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    sentid = coco._id()
    sentences = next(e for e in coco.entries if str(e["cocoid"]) == coco.host)["sentences"]
    sentences += [raw("A first caption.")(sentid), raw("A second caption, same id.")(sentid)]
    return [Target(coco.name, "captions", str(sentid), occurrence=1)]


def _karpathy_unknown_split(corpus: Corpus) -> list[Target]:
    coco = corpus.coco("coco-bad-split", good=1)
    image_id = coco.image(None, good=True)
    coco.entries[-1]["split"] = "holdout"
    return [Target(coco.name, "images", image_id)]


def _spoken_without_wav_key(corpus: Corpus) -> list[Target]:
    coco = corpus.coco("coco-no-wav-key", good=1)
    uttid = coco.utterance(coco.host, _good_wav())
    del coco.spoken["train"][coco.relpath(coco.host)]["captions"][-1]["wav"]
    return [Target(coco.name, "utterances", uttid)]


def _flickr_caption_line(line: Callable[[str], bytes]) -> Build:
    """A raw token.txt line about the host image (``line(host file name)``)."""

    def build(corpus: Corpus) -> list[Target]:
        flickr = corpus.flickr()
        return [Target(flickr.name, "captions", flickr.token_line(line(flickr.host)))]

    return build


def _flickr_unlisted_image_caption(corpus: Corpus) -> list[Target]:
    flickr = corpus.flickr()
    return [Target(flickr.name, "captions", flickr.caption("ghost.jpg", "A ghost nobody listed."))]


def _flickr_wav2capt_line(line: Callable[[str], str]) -> Build:
    """A raw wav2capt.txt line about the host image; its wav is good."""

    def build(corpus: Corpus) -> list[Target]:
        flickr = corpus.flickr()
        return [Target(flickr.name, "utterances", flickr.wav2capt_line(line(flickr.host), _good_wav()))]

    return build


def _flickr_wav_dotdot(corpus: Corpus) -> list[Target]:
    flickr = corpus.flickr()
    corpus.outside_file("flickr-dotdot.wav", _good_wav())
    uttid = flickr.wav2capt_line(f"../../../outside/flickr-dotdot.wav {flickr.host} #0", None)
    return [Target(flickr.name, "utterances", uttid)]


def _flickr_image_in_two_splits(corpus: Corpus) -> list[Target]:
    flickr = corpus.flickr()
    filename = flickr.image("two_splits.jpg", None, good=True)
    flickr.splits["test"].append(filename)
    return [Target(flickr.name, "images", Path(filename).stem, occurrence=1)]


def _flickr_invalid_utf8(corpus: Corpus) -> list[Target]:
    flickr = corpus.flickr("flickr-bad-utf8", good=1)
    filename = flickr.image("latin1.jpg", None, good=True)
    caption_id = flickr.token_line(f"{filename}#0\tA caf".encode() + b"\xe9 in Latin-1.", f"{filename}#0")
    return [Target(flickr.name, "captions", caption_id)]


# ---------------------------------------------------------------------------------------------- the kinds

_UNSAFE = ("unsafe path", "nul")

KINDS: list[Kind] = [
    # images: damaged content
    Kind("image-truncated-jpeg", "image", "rejected", coco_image(lambda: _good_jpeg()[:150]), ("truncated",)),
    Kind("image-zero-byte", "image", "rejected", coco_image(lambda: b""), ("empty", "0 bytes", "0-byte")),
    Kind("image-text-named-jpg", "image", "rejected", coco_image(lambda: b"not a JPEG\n"), ("cannot identify",)),
    Kind("image-png-bad-crc", "image", "rejected", coco_image(_bad_crc_png), ("undecodable", "crc")),
    Kind("image-bomb-header", "image", "rejected", coco_image(lambda: _png_declaring(30_000, 30_000)), ("exceeds",)),
    Kind(
        "image-over-pixel-limit",
        "image",
        "rejected",
        coco_image(lambda: _save(Image.new("1", (8100, 8100), 1), "PNG"), split="val"),
        ("too large",),
    ),
    Kind("image-missing-file", "image", "rejected", coco_image(lambda: None), ("missing",)),
    Kind("image-changed-after-manifest", "image", "rejected", _image_changed_after_manifest, ("changed",)),
    # images: valid but unusual, stored
    Kind("image-png-named-jpg", "image", "stored", coco_image(lambda: _save(_photo(1), "PNG"))),
    Kind("image-one-pixel", "image", "stored", coco_image(lambda: _save(Image.new("RGB", (1, 1), "blue"), "PNG"))),
    Kind("image-cmyk-jpeg", "image", "stored", coco_image(lambda: _save(_photo(2).convert("CMYK"), "JPEG"))),
    Kind(
        "image-gray16-png",
        "image",
        "stored",
        coco_image(lambda: _save(Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000), "PNG")),
    ),
    Kind("image-animated-gif", "image", "stored", coco_image(_animated_gif)),
    Kind("image-rgba-png", "image", "stored", coco_image(lambda: _save(_photo(5).convert("RGBA"), "PNG"))),
    Kind("image-webp-named-jpg", "image", "stored", coco_image(lambda: _save(_photo(6), "WEBP"))),
    Kind("image-jpeg-trailing-bytes", "image", "stored", coco_image(lambda: _good_jpeg() + b"\0garbage" * 8)),
    Kind("image-exif-rotated", "image", "stored", coco_image(_exif_rotated)),
    # images: paths
    Kind("image-path-dotdot", "image", "rejected", _image_dotdot, ("leaves the dataset root",)),
    Kind("image-path-backslash-dotdot", "image", "rejected", _image_backslash, ("leaves the dataset root",)),
    Kind("image-path-absolute", "image", "rejected", _image_absolute, ("absolute",)),
    Kind(
        "image-symlink-outside-root",
        "image",
        "rejected",
        image_at(lambda c: "outside-link.jpg", _symlink(lambda c: c.outside_file("linked.jpg", _good_jpeg()))),
        ("outside the dataset root",),
    ),
    Kind(
        "image-symlink-inside-root",
        "image",
        "stored",
        image_at(
            lambda c: "inside-link.jpg",
            _symlink(lambda c: c.coco().root / "COCO_2014" / c.coco().relpath(c.coco().host)),
        ),
    ),
    Kind(
        "image-dangling-symlink",
        "image",
        "rejected",
        image_at(lambda c: "dangling.jpg", _symlink(lambda c: Path("no-such-file.jpg"))),
        ("missing",),
    ),
    Kind(
        "image-directory-not-file",
        "image",
        "rejected",
        image_at(lambda c: "a-folder.jpg", _directory),
        ("directory", "not a file", "not a regular file"),
    ),
    Kind("image-nul-in-path", "image", "rejected", _isolated_image("coco-nul-path", "bad\0name.jpg"), _UNSAFE),
    Kind(
        "image-name-too-long",
        "image",
        "rejected",
        _isolated_image("coco-long-name", "x" * 300 + ".jpg"),
        ("too long",),
    ),
    # audio: damaged content
    Kind("wav-truncated-header", "audio", "rejected", coco_wav(lambda: _good_wav()[:20]), ("unreadable",)),
    Kind("wav-zero-byte", "audio", "rejected", coco_wav(lambda: b""), ("empty", "0-byte", "0 bytes")),
    Kind(
        "wav-zero-frames",
        "audio",
        "rejected",
        coco_wav(lambda: _wav(np.zeros(0, np.float32))),
        ("empty", "0 samples"),
    ),
    Kind("wav-text-named-wav", "audio", "rejected", coco_wav(lambda: b"RIFF? no, text\n"), ("unreadable",)),
    Kind("wav-zero-sample-rate", "audio", "rejected", coco_wav(_zero_rate_wav), ("unreadable", "sample rate")),
    Kind(
        "wav-nan-samples",
        "audio",
        "rejected",
        coco_wav(lambda: _wav(np.full(8000, np.nan, np.float32), subtype="FLOAT")),
        ("non-finite",),
    ),
    Kind(
        "wav-inf-samples",
        "audio",
        "rejected",
        coco_wav(lambda: _wav(np.where(_tone() > 0, np.inf, 0.1).astype(np.float32), subtype="FLOAT")),
        ("non-finite",),
    ),
    Kind(
        "wav-absurd-amplitude",
        "audio",
        "rejected",
        coco_wav(lambda: _wav(_tone() * np.float32(1e20), subtype="FLOAT")),
        ("non-finite", "nan", "inf", "amplitude", "out of range"),
    ),
    Kind("wav-100-samples", "audio", "rejected", coco_wav(lambda: _wav(_tone()[:100])), ("too short",)),
    Kind("wav-missing-file", "audio", "rejected", coco_wav(lambda: None), ("missing",)),
    Kind("wav-deleted-after-manifest", "audio", "rejected", _wav_deleted_after_manifest, ("missing",)),
    # audio: valid but unusual, stored
    Kind("wav-stereo-44k", "audio", "stored", coco_wav(lambda: _wav(np.stack([_tone(rate=44_100)] * 2, 1), 44_100))),
    Kind("wav-8k-mono", "audio", "stored", coco_wav(lambda: _wav(_tone(1.0, 8_000), 8_000))),
    Kind("wav-24-bit", "audio", "stored", coco_wav(lambda: _wav(_tone(), subtype="PCM_24"))),
    Kind("wav-unsigned-8-bit", "audio", "stored", coco_wav(lambda: _wav(_tone(), subtype="PCM_U8"))),
    Kind("wav-float32", "audio", "stored", coco_wav(lambda: _wav(_tone(), subtype="FLOAT"))),
    Kind("wav-six-channels", "audio", "stored", coco_wav(lambda: _wav(np.stack([_tone()] * 6, 1)))),
    Kind("wav-silence", "audio", "stored", coco_wav(lambda: _wav(np.zeros(RATE, np.float32)))),
    Kind("wav-flac-named-wav", "audio", "stored", coco_wav(lambda: _wav(_tone(), fmt="FLAC"))),
    Kind("wav-ogg-named-wav", "audio", "stored", coco_wav(lambda: _wav(_tone(), fmt="OGG", subtype="VORBIS"))),
    # audio: paths
    Kind("wav-path-dotdot", "audio", "rejected", _wav_dotdot, ("leaves the dataset root",)),
    Kind("wav-path-absolute", "audio", "rejected", _wav_absolute, ("absolute",)),
    Kind(
        "wav-symlink-outside-root",
        "audio",
        "rejected",
        wav_at(lambda c: "wavs/train/0/link.wav", _symlink(lambda c: c.outside_file("linked.wav", _good_wav()))),
        ("outside the dataset root",),
    ),
    Kind(
        "wav-directory-not-file",
        "audio",
        "rejected",
        wav_at(lambda c: "wavs/train/0/a-folder.wav", _directory),
        ("directory", "not a file", "not a regular file"),
    ),
    Kind("flickr-wav-path-dotdot", "audio", "rejected", _flickr_wav_dotdot, ("leaves the dataset root",)),
    # annotations: captions (Karpathy sentences)
    Kind("caption-empty", "annotation", "rejected", coco_caption(raw("")), ("empty",)),
    Kind("caption-whitespace-only", "annotation", "rejected", coco_caption(raw(" \t\u3000\n ")), ("empty",)),
    Kind("caption-null", "annotation", "rejected", coco_caption(raw(None)), ("not a string", "expected a string")),
    Kind("caption-number", "annotation", "rejected", coco_caption(raw(42)), ("not a string", "expected a string")),
    Kind(
        "caption-without-raw",
        "annotation",
        "rejected",
        coco_caption(lambda sentid: {"tokens": ["a", "dog"], "sentid": sentid}),
        ("raw", "empty"),
    ),
    Kind(
        "caption-control-characters",
        "annotation",
        "rejected",
        coco_caption(raw("A dog\x00 barks\x07 \x1b[2J loudly.")),
        ("control",),
    ),
    Kind("caption-megabyte", "annotation", "rejected", coco_caption(raw("very " * 200_000)), ("too long",)),
    Kind("caption-duplicate-id", "annotation", "rejected", _caption_duplicate_id, ("duplicate",)),
    Kind("caption-unicode", "annotation", "stored", coco_caption(raw("Un cafe\u0301 à São Paulo — 東京の犬 🐕"))),
    # annotations: images and utterances
    Kind("karpathy-duplicate-image-id", "annotation", "rejected", _image_duplicate_id, ("duplicate",)),
    Kind("karpathy-unknown-split", "annotation", "rejected", _karpathy_unknown_split, ("split",)),
    Kind("spokencoco-duplicate-uttid", "annotation", "rejected", _utterance_duplicate_id, ("duplicate",)),
    Kind(
        "spokencoco-image-not-in-karpathy",
        "annotation",
        "rejected",
        _utterance_unlisted_image,
        ("without an image", "not listed"),
    ),
    Kind("spokencoco-empty-text", "annotation", "rejected", _utterance_empty_text, ("empty",)),
    Kind("spokencoco-no-wav-key", "annotation", "rejected", _spoken_without_wav_key, ("wav",)),
    # annotations: Flickr8k token file, split lists, wav2capt
    Kind(
        "flickr-token-line-without-tab",
        "annotation",
        "rejected",
        _flickr_caption_line(lambda host: f"{host}#1 A caption after a space, not a tab.".encode()),
        ("malformed",),
    ),
    Kind(
        "flickr-token-key-without-number",
        "annotation",
        "rejected",
        _flickr_caption_line(lambda host: f"{host}\tA caption without #n.".encode()),
        ("malformed",),
    ),
    Kind(
        "flickr-caption-of-unlisted-image",
        "annotation",
        "rejected",
        _flickr_unlisted_image_caption,
        ("without an image",),
    ),
    Kind("flickr-token-invalid-utf8", "annotation", "rejected", _flickr_invalid_utf8, ("utf-8",)),
    Kind("flickr-image-in-two-splits", "annotation", "rejected", _flickr_image_in_two_splits, ("split",)),
    Kind(
        "flickr-wav2capt-too-few-fields",
        "annotation",
        "rejected",
        _flickr_wav2capt_line(lambda host: f"few_fields.wav {host}"),
        ("malformed",),
    ),
    Kind(
        "flickr-wav2capt-unknown-caption",
        "annotation",
        "rejected",
        _flickr_wav2capt_line(lambda host: f"unknown_caption.wav {host} #7"),
        ("without a caption",),
    ),
]
