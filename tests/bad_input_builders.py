"""Builders of bad-input kinds: each writes its damaged item(s) into the corpus and names the rows to check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bad_input_layouts import Corpus, Target, encoded, photo, tone, wav_bytes

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


def symlink_to(target: Callable[[Corpus], Path]) -> Callable[[Corpus, Path], None]:
    def make(corpus: Corpus, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target(corpus))

    return make


def as_directory(corpus: Corpus, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _nothing(corpus: Corpus, path: Path) -> None:
    """The listed path points outside; the file there was written by the kind (or is absent on purpose)."""


def good_jpeg() -> bytes:
    return encoded(photo(7), "JPEG")


def good_wav() -> bytes:
    return wav_bytes(tone(pitch=520.0))


def image_dotdot(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    corpus.outside_file("dotdot.jpg", good_jpeg())
    return [Target(coco.name, "images", coco.image(None, filename="../../../outside/dotdot.jpg"))]


def image_backslash(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    corpus.outside_file("backslash.jpg", good_jpeg())
    return [Target(coco.name, "images", coco.image(None, filename="..\\..\\..\\outside\\backslash.jpg"))]


def image_absolute(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    path = corpus.outside_file("absolute.jpg", good_jpeg())
    image_id = coco.image(None, filename=str(path))
    coco.entries[-1]["filepath"] = ""  # Karpathy relpath = filename, absolute
    return [Target(coco.name, "images", image_id)]


def image_changed_after_manifest(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    image_id = coco.image(good_jpeg(), split="val")
    path = coco.root / "COCO_2014" / coco.relpath(image_id)

    def replace() -> None:
        path.write_bytes(encoded(photo(8), "JPEG"))

    corpus.after_manifests.append(replace)
    return [Target(coco.name, "images", image_id)]


def image_duplicate_id(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    first = coco.image(None, good=True)
    coco.image(good_jpeg(), cocoid=int(first), filename="COCO_train2014_duplicate.jpg")
    return [Target(coco.name, "images", first, occurrence=1)]


def isolated_image(dataset: str, filename: str) -> Build:
    """A COCO image listed under a path the OS cannot even stat, in a dataset of its own."""

    def build(corpus: Corpus) -> list[Target]:
        coco = corpus.coco(dataset, good=1)
        return [Target(dataset, "images", coco.image(None, filename=filename))]

    return build


def wav_dotdot(corpus: Corpus) -> list[Target]:
    corpus.outside_file("dotdot.wav", good_wav())
    return wav_at(lambda c: "../../outside/dotdot.wav", _nothing)(corpus)


def wav_absolute(corpus: Corpus) -> list[Target]:
    path = corpus.outside_file("absolute.wav", good_wav())
    return wav_at(lambda c: str(path), _nothing)(corpus)


def wav_deleted_after_manifest(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    uttid = coco.utterance(coco.host, good_wav())
    path = coco.root / "SpokenCOCO" / "wavs" / "train" / "0" / f"{uttid}.wav"
    corpus.after_manifests.append(path.unlink)
    return [Target(coco.name, "utterances", uttid)]


def utterance_duplicate_id(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    uttid = coco.utterance(coco.host, good_wav())
    coco.utterance(coco.host, good_wav(), uttid=uttid, wav=f"wavs/train/0/{uttid}-again.wav")
    return [Target(coco.name, "utterances", uttid, occurrence=1)]


def utterance_unlisted_image(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    ghost = "train2014/COCO_train2014_000000999999.jpg"
    return [Target(coco.name, "utterances", coco.utterance("", good_wav(), image_file=ghost))]


def utterance_empty_text(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    return [Target(coco.name, "utterances", coco.utterance(coco.host, good_wav(), text=""))]


def caption_duplicate_id(corpus: Corpus) -> list[Target]:
    coco = corpus.coco()
    sentid = coco._id()
    sentences = next(e for e in coco.entries if str(e["cocoid"]) == coco.host)["sentences"]
    sentences += [raw("A first caption.")(sentid), raw("A second caption, same id.")(sentid)]
    return [Target(coco.name, "captions", str(sentid), occurrence=1)]


def karpathy_unknown_split(corpus: Corpus) -> list[Target]:
    coco = corpus.coco("coco-bad-split", good=1)
    image_id = coco.image(None, good=True)
    coco.entries[-1]["split"] = "holdout"
    return [Target(coco.name, "images", image_id)]


def spoken_without_wav_key(corpus: Corpus) -> list[Target]:
    coco = corpus.coco("coco-no-wav-key", good=1)
    uttid = coco.utterance(coco.host, good_wav())
    del coco.spoken["train"][coco.relpath(coco.host)]["captions"][-1]["wav"]
    return [Target(coco.name, "utterances", uttid)]


def flickr_caption_line(line: Callable[[str], bytes]) -> Build:
    """A raw token.txt line about the host image (``line(host file name)``)."""

    def build(corpus: Corpus) -> list[Target]:
        flickr = corpus.flickr()
        return [Target(flickr.name, "captions", flickr.token_line(line(flickr.host)))]

    return build


def flickr_unlisted_image_caption(corpus: Corpus) -> list[Target]:
    flickr = corpus.flickr()
    return [Target(flickr.name, "captions", flickr.caption("ghost.jpg", "A ghost nobody listed."))]


def flickr_wav2capt_line(line: Callable[[str], str]) -> Build:
    """A raw wav2capt.txt line about the host image; its wav is good."""

    def build(corpus: Corpus) -> list[Target]:
        flickr = corpus.flickr()
        return [Target(flickr.name, "utterances", flickr.wav2capt_line(line(flickr.host), good_wav()))]

    return build


def flickr_wav_dotdot(corpus: Corpus) -> list[Target]:
    flickr = corpus.flickr()
    corpus.outside_file("flickr-dotdot.wav", good_wav())
    uttid = flickr.wav2capt_line(f"../../../outside/flickr-dotdot.wav {flickr.host} #0", None)
    return [Target(flickr.name, "utterances", uttid)]


def flickr_image_in_two_splits(corpus: Corpus) -> list[Target]:
    flickr = corpus.flickr()
    filename = flickr.image("two_splits.jpg", None, good=True)
    flickr.splits["test"].append(filename)
    return [Target(flickr.name, "images", Path(filename).stem, occurrence=1)]


def flickr_invalid_utf8(corpus: Corpus) -> list[Target]:
    flickr = corpus.flickr("flickr-bad-utf8", good=1)
    filename = flickr.image("latin1.jpg", None, good=True)
    caption_id = flickr.token_line(f"{filename}#0\tA caf".encode() + b"\xe9 in Latin-1.", f"{filename}#0")
    return [Target(flickr.name, "captions", caption_id)]
