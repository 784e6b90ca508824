"""Reading annotation files with errors that name the file and line, and keeping paths inside a root."""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Any

from storage.errors import SourceFormatError

#: Largest annotation file read (bytes): the real ones are ≤ 200 MB; a larger one is refused, not loaded.
MAX_ANNOTATION_BYTES = 1 << 29
#: Longest caption kept (characters): COCO's longest are ~250; anything far longer is damage or abuse.
MAX_CAPTION_CHARS = 2000
#: Stands in for a caption value that is not a string (``null``, a number); ``SourceListing.link`` rejects it.
NOT_TEXT = "\x00not-text:"


def _read_capped(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_ANNOTATION_BYTES:
            raise SourceFormatError(
                f"{path}: annotation file too large ({size:,} bytes, limit {MAX_ANNOTATION_BYTES:,}); "
                "not loaded, so it cannot exhaust memory"
            )
        return path.read_bytes()
    except FileNotFoundError as error:
        raise SourceFormatError(f"{path}: file not found; check the dataset paths in the config") from error
    except (OSError, ValueError) as error:
        raise SourceFormatError(f"{path}: unreadable ({error})") from error


def load_json(path: Path) -> Any:
    """Parse a JSON annotation file (at most ``MAX_ANNOTATION_BYTES``).

    Raises:
        SourceFormatError: If the file is missing, too large or not valid JSON (the message gives file, line,
            column).
    """
    data = _read_capped(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SourceFormatError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceFormatError(
            f"{path}:{error.lineno}:{error.colno}: invalid JSON ({error.msg}); the file is damaged or truncated"
        ) from error
    except RecursionError as error:
        raise SourceFormatError(f"{path}: JSON nested too deeply to be an annotation file") from error


def read_lines(path: Path) -> list[str]:
    """Read a text annotation file (at most ``MAX_ANNOTATION_BYTES``) as lines without their line ends.

    A line that is not UTF-8 is decoded with U+FFFD in place of the bad bytes, so only that line's record is
    rejected (:func:`text_problem`), not the whole file.

    Raises:
        SourceFormatError: If the file is missing or too large.
    """
    return [line.decode("utf-8", errors="replace") for line in _read_capped(path).splitlines()]


def require_keys(value: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    """Return ``value`` as a dict that has every key, or raise a SourceFormatError naming what is missing."""
    if not isinstance(value, dict):
        raise SourceFormatError(f"{where}: expected an object, found {type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise SourceFormatError(f"{where}: missing key(s) {missing}")
    return value


def clean_text(text: object) -> str:
    """Normalise a caption: NFC Unicode, surrounding whitespace removed (non-ASCII is kept).

    A value that is not a string (``null``, a number) becomes a ``NOT_TEXT`` marker that
    :func:`text_problem` turns into a rejection, rather than the caption "None" or "42".
    """
    if not isinstance(text, str):
        return f"{NOT_TEXT}{type(text).__name__}"
    return unicodedata.normalize("NFC", text).strip()


#: Unicode category Cc (C0 and C1 controls, DEL) except tab, newline and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def text_problem(text: str) -> str | None:
    """Why a cleaned caption cannot be kept, or None."""
    if text.startswith(NOT_TEXT):
        return f"caption is not text: the annotation holds a {text.removeprefix(NOT_TEXT)}, not a string"
    if not text.strip():
        return "empty caption: the caption text is blank"
    if "\ufffd" in text:
        return "caption is not valid UTF-8 (bytes replaced by U+FFFD)"
    if len(text) > MAX_CAPTION_CHARS:
        return f"caption too long: {len(text):,} characters (limit {MAX_CAPTION_CHARS:,})"
    if (
        _CONTROL.search(text) is None
    ):  # the common case, in C: a Python loop over every character costs ~20 s at COCO's size
        return None
    controls = sorted({f"U+{ord(c):04X}" for c in _CONTROL.findall(text)})
    if controls:
        return f"caption has control characters ({', '.join(controls[:5])})"
    return None


def under(folder: str, listed: str) -> str:
    """Join a listed path to its folder, keeping absolute paths absolute so the safety check sees them."""
    if PurePosixPath(listed).is_absolute() or listed.startswith("~"):
        return listed
    return f"{folder}/{listed}" if folder else listed


def listed_part(folder: str, path: str) -> str:
    """Undo :func:`under`: the path as its annotation file listed it, relative to ``folder``."""
    prefix = f"{folder}/" if folder else ""
    return path[len(prefix) :] if prefix and path.startswith(prefix) else path


def unsafe_path_reason(base: Path, relpath: str) -> str | None:
    """Return why a listed path may not be read, or None when it stays inside the folder it was listed for.

    Each configured folder (images, text, speech, annotations) is a trusted base of its own, wherever the
    config puts it (``speech: ../flickr_audio`` is fine, and so is a folder that is a symlink). What an
    annotation file lists must stay inside its base: absolute paths, ``..`` components, NUL bytes and
    symlinks that resolve outside it are refused, so an annotation file can never make the pipeline read
    (and store) files it was not pointed at.
    """
    if "\x00" in relpath:
        return f"unsafe path: {relpath!r} contains a NUL byte"
    pure = PurePosixPath(relpath.replace("\\", "/"))
    if not relpath or pure.is_absolute() or relpath.startswith("~") or (len(relpath) > 1 and relpath[1] == ":"):
        return f"unsafe path: {relpath!r} is absolute or empty; listed paths must be relative to their folder"
    if ".." in pure.parts:
        return f"unsafe path: {relpath!r} leaves the folder it is listed in ('..')"
    try:
        real_base = Path(os.path.realpath(base))
        real = Path(os.path.realpath(base / pure))
    except (OSError, ValueError) as error:
        return f"unsafe path: {relpath!r} cannot be resolved ({error})"
    if real != real_base and real_base not in real.parents:
        return f"unsafe path: {relpath!r} resolves outside the folder it is listed in (symlink to {real})"
    return None


def annotation_file(root: Path, folder: str, name: str, key: str) -> Path:
    """The annotation file ``name`` of a configured folder, refused when it leaves that folder.

    Args:
        root: The dataset root (configured folders are relative to it).
        folder: The configured folder, as the config gives it (relative to ``root``, or absolute).
        name: The file's fixed name inside the folder (``wav2capt.txt``, ``captions_train2014.json``).
        key: The config key that names the folder, for the message.

    Raises:
        SourceFormatError: If ``name`` resolves outside the folder (a symlink out).
    """
    reason = unsafe_path_reason(root / folder, name)
    if reason:
        raise SourceFormatError(f"{root / folder / name}: {reason}; point {key} at the folder that holds it")
    return root / folder / name
