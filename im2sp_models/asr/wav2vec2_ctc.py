"""``wav2vec2-ctc``: transformers ``Wav2Vec2ForCTC`` + its processor from a local folder, greedy CTC decoding.

The paper transcribed with wav2vec2-large-960h-lv60-self; any CTC checkpoint saved with ``save_pretrained``
(model and processor: ``Wav2Vec2Processor`` with its tokenizer) loads. Each waveform is normalised as the
processor's feature-extractor config says and decoded on its own (no padding), greedy: argmax per frame,
repeats merged, blanks dropped — the processor's ``decode``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from im2sp_models.asr.registry import register_asr
from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError
from im2sp_models.registry import ModelSettings, NoSettings, folder_checksum


@register_asr
class Wav2Vec2CtcRecognizer:
    """A CTC acoustic model with its character tokenizer."""

    name: ClassVar[str] = "wav2vec2-ctc"
    Settings: ClassVar[type[ModelSettings]] = NoSettings
    needs_checkpoint: ClassVar[bool] = True

    def __init__(self, model: Any, processor: Any, checksum: str, device: str) -> None:
        self.model = model
        self.processor = processor
        self.checksum = checksum
        self.device = device

    @property
    def fingerprint(self) -> str:
        """Hash of the name and the folder's files."""
        return hashlib.sha256(f"{self.name}\n{self.checksum}".encode()).hexdigest()[:16]

    def transcribe(self, waveforms: list[np.ndarray]) -> list[str]:
        """Greedy CTC transcript of each 16 kHz waveform, lowercased."""
        import torch

        out = []
        with torch.inference_mode():
            for waveform in waveforms:
                inputs = self.processor(waveform, sampling_rate=16_000, return_tensors="pt")
                logits = self.model(inputs.input_values.to(self.device)).logits
                ids = torch.argmax(logits, dim=-1)[0].cpu()
                out.append(str(self.processor.decode(ids)).lower().strip())
        return out

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: NoSettings | None = None, *, device: str = "auto"
    ) -> Wav2Vec2CtcRecognizer:
        """Load model and processor from a local folder (no settings).

        Raises:
            CheckpointError: No folder, or not a CTC checkpoint with its processor.
        """
        from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

        if checkpoint is None or not checkpoint.is_dir():
            raise CheckpointError(f"wav2vec2-ctc needs a local folder saved with save_pretrained; got {checkpoint}")
        try:
            model: Any = Wav2Vec2ForCTC.from_pretrained(str(checkpoint), local_files_only=True)
            processor = Wav2Vec2Processor.from_pretrained(str(checkpoint), local_files_only=True)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{checkpoint}: not a wav2vec2 CTC checkpoint with a processor ({error})") from error
        resolved = resolve_device(device)
        return cls(model.to(resolved).eval(), processor, folder_checksum(checkpoint), resolved)
