"""Reading annotation files with errors that name the file and line, and keeping paths inside a root."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Any

from storage.errors import SourceFormatError


def load_json(path: Path) -> Any:
    """Parse a JSON annotation file.

    Raises:
        SourceFormatError: If the file is missing or not valid JSON (the message gives file, line, column).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise SourceFormatError(f"{path}: file not found; check the dataset paths in the config") from error
    except UnicodeDecodeError as error:
        raise SourceFormatError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceFormatError(
            f"{path}:{error.lineno}:{error.colno}: invalid JSON ({error.msg}); the file is damaged or truncated"
        ) from error


def read_lines(path: Path) -> list[str]:
    """Read a text annotation file as lines without their line ends.

    Raises:
        SourceFormatError: If the file is missing or not UTF-8.
    """
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as error:
        raise SourceFormatError(f"{path}: file not found; check the dataset paths in the config") from error
    except UnicodeDecodeError as error:
        raise SourceFormatError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error


def require_keys(value: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    """Return ``value`` as a dict that has every key, or raise a SourceFormatError naming what is missing."""
    if not isinstance(value, dict):
        raise SourceFormatError(f"{where}: expected an object, found {type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise SourceFormatError(f"{where}: missing key(s) {missing}")
    return value


def clean_text(text: object) -> str:
    """Normalise a caption: NFC Unicode, surrounding whitespace removed (non-ASCII is kept)."""
    return unicodedata.normalize("NFC", str(text)).strip()


def under(folder: str, listed: str) -> str:
    """Join a listed path to its folder, keeping absolute paths absolute so the safety check sees them."""
    if PurePosixPath(listed).is_absolute() or listed.startswith("~"):
        return listed
    return f"{folder}/{listed}" if folder else listed


def unsafe_path_reason(root: Path, relpath: str) -> str | None:
    """Return why a listed path may not be read, or None when it stays inside the dataset root.

    Absolute paths, ``..`` components and symlinks that resolve outside the root are refused, so an
    annotation file can never make the pipeline read (and store) files it was not pointed at.
    """
    pure = PurePosixPath(relpath.replace("\\", "/"))
    if not relpath or pure.is_absolute() or relpath.startswith("~") or (len(relpath) > 1 and relpath[1] == ":"):
        return f"unsafe path: {relpath!r} is absolute or empty; listed paths must be relative to the dataset root"
    if ".." in pure.parts:
        return f"unsafe path: {relpath!r} leaves the dataset root ('..')"
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(root / pure))
    if real != real_root and real_root not in real.parents:
        return f"unsafe path: {relpath!r} resolves outside the dataset root (symlink to {real})"
    return None
