"""Audio input: any WAV/FLAC soundfile reads, averaged to mono, resampled to 16 kHz with soxr, checked.

Rejections (raised as ``ItemRejected``, recorded by the caller): unreadable, empty, NaN/Inf samples, and
audio shorter than the feature extractor's receptive field. Silence is kept: it is valid speech input.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import numpy as np
import soundfile

from im2sp_models.errors import ItemRejected

SAMPLE_RATE = 16_000
#: Fairseq's feature dumping cuts long audio into chunks of this many seconds.
CHUNK_SECONDS = 100.0
#: soundfile names the in-memory buffer by its repr, memory address included: no file, and new on every run.
_OBJECT_REPR = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")


def load_audio(data: bytes, *, min_samples: int) -> np.ndarray:
    """Decode audio bytes to float32 mono at 16 kHz.

    Args:
        data: File content (WAV or FLAC, any PCM or float sample format, any channel count).
        min_samples: Fewest 16 kHz samples the extractor accepts (its receptive field).

    Raises:
        ItemRejected: unreadable, empty, non-finite or too short audio.
    """
    if not data:
        raise ItemRejected("unreadable audio: 0-byte file")
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise ItemRejected(f"unreadable audio: {_OBJECT_REPR.sub('the file', str(error))}") from error
    if samples.size == 0:
        raise ItemRejected("empty audio: 0 samples")
    if not np.isfinite(samples).all():
        raise ItemRejected("non-finite audio: NaN or Inf samples")
    mono: np.ndarray = samples.mean(axis=1, dtype=np.float32)
    if rate != SAMPLE_RATE:
        import soxr

        mono = np.asarray(soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ"), dtype=np.float32)
    if len(mono) < min_samples:
        raise ItemRejected(f"audio too short: {len(mono)} samples at 16 kHz, the extractor needs ≥ {min_samples}")
    return mono


def chunks(samples: np.ndarray, *, seconds: float = CHUNK_SECONDS, min_samples: int = 1) -> Iterator[np.ndarray]:
    """Non-overlapping chunks of at most ``seconds``; a tail shorter than ``min_samples`` joins the previous one."""
    size = max(1, int(seconds * SAMPLE_RATE))
    starts = list(range(0, len(samples), size))
    if len(starts) > 1 and len(samples) - starts[-1] < min_samples:
        starts.pop()
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(samples)
        yield samples[start:end]
