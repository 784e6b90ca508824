"""Opening every listed media file once: size, sha256, and whether it decodes."""

from __future__ import annotations

import hashlib
import io
import re
import stat
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import soundfile
from PIL import ExifTags, Image, UnidentifiedImageError

from storage.sources.files import listed_part, unsafe_path_reason
from storage.sources.records import OK, ImageRecord, UtteranceRecord, reject

T = TypeVar("T", ImageRecord, UtteranceRecord)


#: ``repr`` of an object with its memory address (``<_io.BytesIO object at 0x7f…>``), as PIL and soundfile put
#: in their messages: it names no file and differs on every run, so manifests would too.
_OBJECT_REPR = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")


def _message(error: BaseException, relpath: str) -> str:
    """A decoder's error message with object reprs replaced by the listed path: stable across runs."""
    text = _OBJECT_REPR.sub(repr(relpath), str(error)).strip()
    return text or type(error).__name__


def _not_readable(path: Path, relpath: str) -> str | None:
    """Why the listed path cannot be read as a regular file, or None when it can."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return f"missing file: {relpath}"
    except OSError as error:  # a name too long, a symlink loop, no permission
        return f"unreadable path: {relpath!r}: {(error.strerror or type(error).__name__).lower()}"
    except ValueError as error:  # a NUL byte, should the path checks ever let one through
        return f"unreadable path: {relpath!r}: {error}"
    if stat.S_ISDIR(info.st_mode):
        return f"not a file: {relpath} is a directory"
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
        return f"not a file: {relpath} is not a regular file"
    return None


def _read(root: Path, record: ImageRecord | UtteranceRecord) -> bytes | None:
    listed = listed_part(record.base, record.path)
    reason = unsafe_path_reason(root / record.base, listed) or _not_readable(root / record.path, record.path)
    if reason:
        reject(record, reason)
        return None
    try:
        data = (root / record.path).read_bytes()
    except OSError as error:
        reject(record, f"unreadable file: {record.path}: {(error.strerror or type(error).__name__).lower()}")
        return None
    record.bytes = len(data)
    record.sha256 = hashlib.sha256(data).hexdigest()
    if not data:  # said here, not left to the decoders' "cannot identify" / "Format not recognised"
        reject(record, f"empty file: {record.path} has 0 bytes")
        return None
    return data


#: EXIF orientations that turn the picture by 90° (transpose, rotate 270, transverse, rotate 90).
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as the image is shown (after its EXIF orientation), which is what gets tokenized."""
    width, height = image.size
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation)
    except (OSError, ValueError, SyntaxError):  # a damaged EXIF block: the decoders ignore it too
        return width, height
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


def probe_image(root: Path, record: ImageRecord) -> None:
    """Fill size, hash and dimensions of an image; reject it when it is missing, unsafe or undecodable."""
    data = _read(root, record)
    if data is None:
        return
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a full decode: a truncated JPEG only fails here
            record.width, record.height = displayed_size(image)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        reject(record, f"undecodable image: {_message(error, record.path)}")


def probe_utterance(root: Path, record: UtteranceRecord) -> None:
    """Fill size, hash, duration and sample rate of a wav; reject it when missing, unsafe, unreadable or empty."""
    data = _read(root, record)
    if data is None:
        return
    try:
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        reject(record, f"unreadable audio: {_message(error, record.path)}")
        return
    record.sample_rate = int(info.samplerate)
    record.duration = float(info.frames) / float(info.samplerate) if info.samplerate else 0.0
    if info.frames <= 0:
        reject(record, "empty audio: 0 samples")


def probe_all(
    root: Path,
    records: Sequence[T],
    probe: Callable[[Path, T], None],
    *,
    workers: int,
    on_done: Callable[[int], None] | None = None,
) -> None:
    """Probe every record still ok, in a thread pool (hashing and decoding release the GIL)."""
    workers = max(1, workers)
    ahead: deque[Future[None]] = deque()  # a bounded queue: 600 k futures at once would hold ~300 MB
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for record in records:
            if record.status == OK:
                ahead.append(pool.submit(probe, root, record))
            while ahead and (len(ahead) > 64 * workers or ahead[0].done()):
                ahead.popleft().result()
                if on_done is not None:
                    on_done(1)
        while ahead:
            ahead.popleft().result()
            if on_done is not None:
                on_done(1)
