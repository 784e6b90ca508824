"""``hubert``: layer-L features of a local HuBERT checkpoint (transformers), computing only blocks 1…L.

Layer L is the output of transformer block L, exactly ``hidden_states[L]`` of the full model. The
checkpoint's ``preprocessor_config.json`` decides whether waveforms are normalised (HuBERT-Base: no;
HuBERT-Large: yes), applied by transformers' own feature extractor. HuBERT-Base's conv stack uses group
norm, so padding would change features: utterances are batched only with others of exactly equal length.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from im2sp_models.device import resolve_device
from im2sp_models.errors import CheckpointError
from im2sp_models.speech_features.registry import register_extractor

#: Samples of the shortest input that yields one frame through the conv stack (25 ms at 16 kHz).
RECEPTIVE_FIELD = 400


def _folder_checksum(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in (".safetensors", ".bin", ".json"):
            digest.update(path.name.encode())
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


@register_extractor("hubert")
class HubertExtractor:
    """A truncated ``HubertModel`` and, when the checkpoint asks for it, waveform normalisation."""

    name: ClassVar[str] = "hubert"

    def __init__(self, model: Any, layer: int, normalizer: Any, checksum: str, device: str, batch_size: int) -> None:
        self.model = model
        self.layer = layer
        self.normalizer = normalizer
        self.checksum = checksum
        self.device = device
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        """Hidden size of the checkpoint."""
        return int(self.model.config.hidden_size)

    @property
    def min_samples(self) -> int:
        """The conv stack's receptive field."""
        return RECEPTIVE_FIELD

    @property
    def fingerprint(self) -> str:
        """Hash of name, layer and the checkpoint files."""
        precision = "bf16" if self.device.startswith("cuda") else "fp32"  # bf16 features differ from fp32 ones
        return hashlib.sha256(f"{self.name}\n{self.layer}\n{precision}\n{self.checksum}".encode()).hexdigest()[:16]

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import contextlib

        import torch

        if self.normalizer is not None:
            batch = np.stack(
                [self.normalizer(w, sampling_rate=16_000, return_tensors="np").input_values[0] for w in batch]
            ).astype(np.float32)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.device.startswith("cuda") else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            hidden = self.model(torch.from_numpy(batch).to(self.device)).last_hidden_state
        return np.asarray(hidden.float().cpu().numpy(), dtype=np.float32)

    def extract(self, waveforms: list[np.ndarray]) -> list[np.ndarray]:
        """Features per waveform; only equal-length waveforms share a batch (no padding, same results)."""
        by_length: dict[int, list[int]] = defaultdict(list)
        for index, waveform in enumerate(waveforms):
            by_length[len(waveform)].append(index)
        results: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(waveforms)
        for indices in by_length.values():
            for start in range(0, len(indices), self.batch_size):
                group = indices[start : start + self.batch_size]
                features = self._forward(np.stack([waveforms[i] for i in group]).astype(np.float32))
                for position, index in enumerate(group):
                    results[index] = features[position]
        return results

    @classmethod
    def load(
        cls, checkpoint: Path | None, *, device: str = "auto", layer: int = 6, batch_size: int = 8, **options: Any
    ) -> HubertExtractor:
        """Load ``HubertModel`` from a local folder saved with ``save_pretrained``; keep blocks 1…``layer``.

        Raises:
            CheckpointError: No folder, not a HuBERT checkpoint, or fewer blocks than ``layer``.
        """
        import torch
        from transformers import HubertModel, Wav2Vec2FeatureExtractor

        if checkpoint is None or not checkpoint.is_dir():
            raise CheckpointError(f"hubert needs a local checkpoint folder (save_pretrained); got {checkpoint}")
        try:
            model = HubertModel.from_pretrained(str(checkpoint), local_files_only=True)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{checkpoint}: not a HuBERT checkpoint ({error})") from error
        blocks = len(model.encoder.layers)
        if not 1 <= layer <= blocks:
            raise CheckpointError(f"{checkpoint}: layer {layer} requested, the model has {blocks} blocks")
        model.encoder.layers = model.encoder.layers[:layer]
        if model.config.do_stable_layer_norm:
            # That encoder normalises after its last block; hidden_states[L] of the full model is taken before.
            model.encoder.layer_norm = torch.nn.Identity()  # type: ignore[assignment]
        normalizer = None
        if (checkpoint / "preprocessor_config.json").exists():
            extractor: Any = Wav2Vec2FeatureExtractor.from_pretrained(str(checkpoint), local_files_only=True)
            normalizer = extractor if extractor.do_normalize else None
        resolved = resolve_device(device)
        net: Any = model
        return cls(net.to(resolved).eval(), layer, normalizer, _folder_checksum(checkpoint), resolved, batch_size)
