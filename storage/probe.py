"""Opening every listed media file once: size, sha256, and whether it decodes."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import soundfile
from PIL import Image, UnidentifiedImageError

from storage.sources.files import unsafe_path_reason
from storage.sources.records import OK, ImageRecord, UtteranceRecord, reject

T = TypeVar("T", ImageRecord, UtteranceRecord)


def _read(root: Path, record: ImageRecord | UtteranceRecord) -> bytes | None:
    reason = unsafe_path_reason(root, record.path)
    if reason:
        reject(record, reason)
        return None
    path = root / record.path
    if not path.is_file():
        reject(record, f"missing file: {record.path}")
        return None
    data = path.read_bytes()
    record.bytes = len(data)
    record.sha256 = hashlib.sha256(data).hexdigest()
    return data


def probe_image(root: Path, record: ImageRecord) -> None:
    """Fill size, hash and dimensions of an image; reject it when it is missing, unsafe or undecodable."""
    data = _read(root, record)
    if data is None:
        return
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a full decode: a truncated JPEG only fails here
            record.width, record.height = image.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        reject(record, f"undecodable image: {error}")


def probe_utterance(root: Path, record: UtteranceRecord) -> None:
    """Fill size, hash, duration and sample rate of a wav; reject it when missing, unsafe, unreadable or empty."""
    data = _read(root, record)
    if data is None:
        return
    try:
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        reject(record, f"unreadable audio: {error}")
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
    todo = [r for r in records if r.status == OK]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for _ in pool.map(lambda record: probe(root, record), todo):
            if on_done is not None:
                on_done(1)
