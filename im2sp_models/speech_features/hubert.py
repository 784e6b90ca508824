"""``hubert``: layer-L features of a local HuBERT checkpoint (transformers), computing only blocks 1…L.

Layer L is the output of transformer block L, exactly ``hidden_states[L]`` of the full model. The
checkpoint's ``preprocessor_config.json`` decides whether waveforms are normalised (HuBERT-Base: no;
HuBERT-Large: yes), applied by transformers' own feature extractor to the whole utterance; long utterances
are then cut into chunks computed one by one and joined, as fairseq's feature reader does (normalising each
chunk on its own statistics would change every value of a long utterance, not only those at the cuts).

``precision`` (``fp32`` by default, or ``bf16`` autocast) is an option and part of the fingerprint.

Batching never changes features (beyond float rounding), so ``batch_size`` and ``max_batch_frames`` are not
part of the fingerprint, nor is how utterances are bucketed (extract-speech-features sorts a whole shard by
length: ``tasks/speech_features.py``). Utterances are padded into batches, grouped longest first, each within
``batch_size`` utterances and a budget of ``max_batch_frames`` padded frames, so a batch pads little
(:attr:`HubertExtractor.padding` counts the padded share). The conv stack's convolutions are unpadded, so a
valid output frame only ever sees valid samples; HuBERT-Base's first conv layer uses group norm over time,
whose statistics padding would alter, so it is computed per item over its valid steps only
(``_masked_group_norm``). On a GPU the conv stack runs on the padded batch; on the CPU it runs per utterance
(faster there: ``benchmarks/bench_hubert_throughput.py``). In the transformer, padded frames are masked:
transformers zeroes them before the positional convolution (whose own padding is zeros too), layer norm is
per frame, and attention ignores masked keys. Attention is PyTorch's fused ``scaled_dot_product_attention``
(``attn_implementation="sdpa"``), given no mask at all when a batch holds no padding.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from im2sp_models.audio import CHUNK_SECONDS, chunks
from im2sp_models.device import check_precision, compute_precision, resolve_device
from im2sp_models.errors import CheckpointError
from im2sp_models.registry import ModelSettings, folder_checksum
from im2sp_models.speech_features.registry import register_extractor

#: Samples of the shortest input that yields one frame through the conv stack (25 ms at 16 kHz).
RECEPTIVE_FIELD = 400


def _masked_group_norm(hidden: Any, valid: Any, norm: Any) -> Any:
    """``norm`` (a ``GroupNorm``) applied to each item of a padded ``(batch, channels, steps)`` batch as if alone.

    Mean and (biased) variance per item and group are taken over the item's first ``valid`` steps, in float32
    (autocast off). The masked sums over time are batched matrix-vector products with the mask, so no masked
    copy of the activations is made: this layer's output is the largest tensor of the whole forward.
    """
    import torch

    batch, channels, steps = hidden.shape
    groups = norm.num_groups
    width = channels // groups
    with torch.autocast(hidden.device.type, enabled=False):
        values = hidden.float()
        mask = (torch.arange(steps, device=hidden.device)[None, :] < valid[:, None]).float()[:, :, None]
        count = valid.float()[:, None] * width
        mean = torch.bmm(values, mask).reshape(batch, groups, width).sum(dim=2) / count
        centred = values - mean.repeat_interleave(width, dim=1)[:, :, None]
        variance = torch.bmm(centred.square(), mask).reshape(batch, groups, width).sum(dim=2) / count
        scale = torch.rsqrt(variance + norm.eps).repeat_interleave(width, dim=1)
        if not norm.affine:
            return centred * scale[:, :, None]
        return torch.addcmul(norm.bias.float()[None, :, None], centred, (scale * norm.weight.float())[:, :, None])


class HubertSettings(ModelSettings):
    """hubert's options.

    Args:
        layer: Output of transformer block ``layer`` (``hidden_states[layer]``); part of the fingerprint.
        batch_size: Utterances per padded batch at most (on a GPU, set it high, e.g. 1,024, and let
            ``max_batch_frames`` bound the batches); not part of the fingerprint.
        max_batch_frames: The batch budget: padded frames per batch at most (None: 4,000 on the CPU, 20,000 on
            a GPU); not part of the fingerprint.
        precision: ``fp32`` (TF32 off, as fairseq extracts) or ``bf16`` (autocast); part of the fingerprint.
    """

    layer: int = Field(6, ge=1)
    batch_size: int = Field(8, ge=1)
    max_batch_frames: int | None = Field(None, ge=1)
    precision: Literal["fp32", "bf16"] = "fp32"


@register_extractor
class HubertExtractor:
    """A truncated ``HubertModel`` and, when the checkpoint asks for it, waveform normalisation."""

    name: ClassVar[str] = "hubert"
    Settings: ClassVar[type[ModelSettings]] = HubertSettings
    #: A folder saved with ``save_pretrained``.
    needs_checkpoint: ClassVar[bool] = True

    def __init__(
        self,
        model: Any,
        layer: int,
        normalizer: Any,
        checksum: str,
        device: str,
        batch_size: int,
        max_batch_frames: int = 4000,
        precision: str = "fp32",
    ) -> None:
        self.model = model
        self.layer = layer
        self.normalizer = normalizer
        self.checksum = checksum
        self.device = device
        self.batch_size = batch_size
        #: Padded frames per transformer batch at most (batch size × longest utterance); longer ones run alone.
        self.max_batch_frames = max_batch_frames
        #: ``fp32`` (TF32 off) or ``bf16`` (autocast on whichever device): chosen, never inferred from the device.
        self.precision = check_precision(precision, self.name)
        #: Run the conv stack on padded batches too (GPU: fewer, larger kernels). On the CPU, per utterance is
        #: faster: padding costs more memory traffic than batching saves (benchmarks/bench_hubert_throughput.py).
        self.pad_conv_stack = device.startswith("cuda")
        self._frames = [0, 0]  # transformer frames: valid, computed (valid + padding)
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Hidden size of the checkpoint."""
        return int(self.model.config.hidden_size)

    @property
    def min_samples(self) -> int:
        """The conv stack's receptive field."""
        return RECEPTIVE_FIELD

    @property
    def padding(self) -> float:
        """Share of the transformer frames computed since loading that were padding (0 when none were computed)."""
        with self._lock:
            valid, computed = self._frames
        return 1.0 - valid / computed if computed else 0.0

    @property
    def fingerprint(self) -> str:
        """Hash of name, layer, precision and the checkpoint files (bf16 features differ from fp32 ones)."""
        document = f"{self.name}\n{self.layer}\n{self.precision}\n{self.checksum}"
        return hashlib.sha256(document.encode()).hexdigest()[:16]

    def _normalised(self, waveform: np.ndarray) -> np.ndarray:
        if self.normalizer is None:
            return np.asarray(waveform, dtype=np.float32)
        return np.asarray(
            self.normalizer(waveform, sampling_rate=16_000, return_tensors="np").input_values[0], dtype=np.float32
        )

    def _frame_count(self, samples: int) -> int:
        return int(self.model._get_feat_extract_output_lengths(samples))

    def _groups(self, lengths: list[int]) -> list[list[int]]:
        """Indices in batches, longest first, each within ``batch_size`` and ``max_batch_frames``."""
        groups: list[list[int]] = []
        for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
            group = groups[-1] if groups else None
            if (
                group is None
                or len(group) >= self.batch_size
                or (len(group) + 1) * lengths[group[0]] > max(self.max_batch_frames, lengths[group[0]])
            ):
                groups.append([index])
            else:
                group.append(index)
        return groups

    def _conv_stack(self, waveforms: list[np.ndarray]) -> tuple[Any, Any]:
        """Conv stack of a padded batch: ``(batch, frames, channels)`` and each item's valid frame count.

        A valid output frame only sees valid input samples (the convolutions are unpadded), so padding is
        safe everywhere except in group norm, whose statistics are taken over each item's valid steps only.
        Nothing here waits for the device: the valid counts follow the layers' arithmetic on the device too.
        """
        import torch

        batch = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in waveforms], batch_first=True)
        samples = torch.tensor([len(w) for w in waveforms])
        if self.device.startswith("cuda"):  # pinned: the copies overlap the previous batch's compute
            batch, samples = batch.pin_memory(), samples.pin_memory()
        hidden = batch[:, None, :].to(self.device, non_blocking=True)
        valid = samples.to(self.device, non_blocking=True)
        for layer in self.model.feature_extractor.conv_layers:
            hidden = layer.conv(hidden)
            valid = torch.div(valid - layer.conv.kernel_size[0], layer.conv.stride[0], rounding_mode="floor") + 1
            norm = getattr(layer, "layer_norm", None)
            if isinstance(norm, torch.nn.GroupNorm) and len(waveforms) > 1:
                hidden = _masked_group_norm(hidden, valid, norm)
            elif isinstance(norm, torch.nn.GroupNorm):
                hidden = norm(hidden)
            elif norm is not None:  # layer norm over channels, per step: padding cannot leak
                hidden = norm(hidden.transpose(-2, -1)).transpose(-2, -1)
            hidden = layer.activation(hidden)
        return hidden.transpose(1, 2), valid

    def _extracted(self, waveforms: list[np.ndarray]) -> tuple[Any, Any]:
        """Conv stack outputs of a batch, padded, and valid frame counts (padded stack or one by one)."""
        import torch

        if self.pad_conv_stack or len(waveforms) == 1:
            return self._conv_stack(waveforms)
        alone = [self._conv_stack([waveform]) for waveform in waveforms]
        padded = torch.nn.utils.rnn.pad_sequence([extracted[0] for extracted, _ in alone], batch_first=True)
        return padded, torch.cat([valid for _, valid in alone])

    def _forward(self, waveforms: list[np.ndarray], counts: list[int]) -> Any:
        """Layer-L features of one padded batch, left on the device; ``counts`` are the items' valid frames."""
        import torch

        extracted, valid = self._extracted(waveforms)
        projected = self.model.feature_projection(extracted)
        mask = None
        if min(counts) < projected.shape[1]:  # no padding, no mask: sdpa may then take its fastest kernel
            mask = torch.arange(projected.shape[1], device=projected.device)[None, :] < valid[:, None]
        return self.model.encoder(projected, attention_mask=mask).last_hidden_state

    def extract(self, waveforms: list[np.ndarray], chunk_seconds: float = CHUNK_SECONDS) -> list[np.ndarray]:
        """Features of whole utterances: each normalised whole, then computed in chunks of ``chunk_seconds``.

        A chunk is computed as if alone (as fairseq does), so frames near a cut differ from one forward pass
        over the whole utterance, and a cut costs one frame; a tail shorter than the receptive field joins
        the chunk before it. Chunks of every utterance share the padded batches.
        """
        pieces = [
            list(chunks(self._normalised(w), seconds=chunk_seconds, min_samples=RECEPTIVE_FIELD)) for w in waveforms
        ]
        flat = self._batched([piece for parts in pieces for piece in parts])
        joined, position = [], 0
        for parts in pieces:
            joined.append(np.concatenate(flat[position : position + len(parts)]))
            position += len(parts)
        return joined

    def _batched(self, waveforms: list[np.ndarray]) -> list[np.ndarray]:
        """Features of (normalised) waveforms, in padded batches whose padding never reaches a valid frame.

        On a GPU every batch is queued before any result is fetched: each batch's features are copied to
        pinned host memory without waiting, and the device is synchronised once, at the end.
        """
        import torch

        lengths = [self._frame_count(len(w)) for w in waveforms]
        cuda = self.device.startswith("cuda")
        queued = []
        with torch.inference_mode(), compute_precision(self.device, self.precision):
            for group in self._groups(lengths):
                counts = [lengths[i] for i in group]
                hidden = self._forward([waveforms[i] for i in group], counts).float()
                queued.append((group, counts, hidden.to("cpu", non_blocking=True) if cuda else hidden))
        if cuda:
            torch.cuda.synchronize(self.device)
        results: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(waveforms)
        for group, counts, hidden in queued:
            array = hidden.numpy()
            for position, (index, count) in enumerate(zip(group, counts, strict=True)):
                results[index] = np.asarray(array[position, :count], dtype=np.float32)
            with self._lock:
                self._frames[0] += sum(counts)
                self._frames[1] += array.shape[0] * array.shape[1]
        return results

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: HubertSettings | None = None, *, device: str = "auto"
    ) -> HubertExtractor:
        """Load ``HubertModel`` from a local folder saved with ``save_pretrained``; keep blocks 1…``layer``.

        ``batch_size`` utterances at most share a batch, padded to at most ``max_batch_frames`` frames in all
        (default 4,000 on the CPU, 80 s of audio, which bounds memory; 20,000 on a GPU); a longer utterance
        runs alone. On a GPU, batches of 32–64 run ×12–14 faster than one utterance at a time (README).
        ``precision``: ``fp32`` (TF32 off) or ``bf16`` (autocast, on the CPU too), named in the fingerprint.
        Attention is transformers' ``sdpa`` (PyTorch's fused ``scaled_dot_product_attention``), asked for by name
        so a future default cannot change it.

        Raises:
            CheckpointError: No folder, not a HuBERT checkpoint, or fewer blocks than ``layer``.
            ConfigError: A precision other than ``fp32`` or ``bf16``.
        """
        import torch
        from transformers import HubertModel, Wav2Vec2FeatureExtractor

        options = settings or HubertSettings()
        layer, batch_size, max_batch_frames = options.layer, options.batch_size, options.max_batch_frames
        precision = check_precision(options.precision, cls.name)
        if checkpoint is None or not checkpoint.is_dir():
            raise CheckpointError(f"hubert needs a local checkpoint folder (save_pretrained); got {checkpoint}")
        try:
            model = HubertModel.from_pretrained(str(checkpoint), local_files_only=True, attn_implementation="sdpa")
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
        checksum = folder_checksum(checkpoint, (".safetensors", ".bin", ".json"))
        if max_batch_frames is None:
            max_batch_frames = 20_000 if resolved.startswith("cuda") else 4000
        loaded = net.to(resolved).eval()
        return cls(loaded, layer, normalizer, checksum, resolved, batch_size, max_batch_frames, precision)
