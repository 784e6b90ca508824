"""``vit-vqgan``: ViT-VQGAN checkpoints as released (Lightning ``.ckpt`` or safetensors), and SeiT's pair.

Accepted checkpoints (a file, or a folder holding exactly one of them):
- a Lightning ``.ckpt`` whose ``state_dict`` has ``encoder.*``, ``decoder.*``, ``quantizer.embedding.weight``,
  ``pre_quant.*``, ``post_quant.*`` (``loss.*`` is ignored); loaded with ``torch.load(weights_only=True)``;
- a ``.safetensors`` file with the same keys;
- SeiT's ``tokenizer.ckpt`` (a pickled encoder module) + ``codebook.ckpt`` (an N × 32 tensor): pickles run
  code when loaded, so this needs ``trust_pickle: true``; it has no decoder, so it cannot reconstruct.
The architecture is read off the tensor shapes; nothing is downloaded.

``precision`` (``fp32`` by default, as the official code tokenizes; or ``bf16``) is part of the fingerprint:
bf16 autocast moves a few percent of the codes (see ``im2sp_models.device``).

``decoder`` (``pil`` by default) chooses how tokenize-images turns JPEG files into pixels: ``nvjpeg`` decodes
plain JPEGs on the GPU and resizes them there (``im2sp_models.gpu_jpeg``), every other file takes the PIL
path. nvJPEG's pixels differ slightly from libjpeg's, so ``nvjpeg`` is named in the fingerprint (``pil`` is
not: every existing store keeps its id). Asked for where it cannot run (no CUDA device, no torchvision), it is
a configuration error rather than a silent fall back to PIL: the units would then be named for a decoder that
did not make them, and shards of one version would differ with the host that built them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from im2sp_models.device import check_precision, compute_precision, resolve_device
from im2sp_models.errors import CheckpointError
from im2sp_models.image_tokenizers.registry import register_tokenizer
from im2sp_models.registry import ModelSettings
from storage.errors import ConfigError
from storage.hashing import sha256_file

_REQUIRED = (
    "encoder.to_patch_embedding.0.weight",
    "quantizer.embedding.weight",
    "pre_quant.weight",
    "post_quant.weight",
    "decoder.to_pixel.1.weight",
)


def _read_state(path: Path) -> dict[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError or RuntimeError for refused globals
        raise CheckpointError(
            f"{path}: cannot be read as plain tensors ({type(error).__name__}); export its state_dict to "
            "safetensors, or check that it is a ViT-VQGAN Lightning checkpoint"
        ) from error
    state = document.get("state_dict", document) if isinstance(document, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no state_dict found")
    return state


class ViTVQGANSettings(ModelSettings):
    """vit-vqgan's options.

    Args:
        precision: ``fp32`` (float32, TF32 off, as the official code tokenizes) or ``bf16`` (bfloat16
            autocast); part of the fingerprint, so each precision has its own image units.
        trust_pickle: Allow SeiT's pickled ``tokenizer.ckpt`` (loading a pickle runs code from the file).
        forward_batch: Images per forward pass (memory, not results).
        decoder: How tokenize-images decodes JPEG files: ``pil`` (on the host) or ``nvjpeg`` (on the GPU, with
            torchvision; other files still through PIL); ``nvjpeg`` is part of the fingerprint.
    """

    precision: Literal["fp32", "bf16"] = "fp32"
    trust_pickle: bool = False
    forward_batch: int = Field(16, ge=1)
    decoder: Literal["pil", "nvjpeg"] = "pil"


@register_tokenizer
class ViTVQGAN:
    """A loaded ViT-VQGAN (or SeiT encoder + codebook) as an image tokenizer.

    Args:
        net: The network (``ViTVQ``), or for SeiT a callable encoder.
        checksum: sha256 of the checkpoint file(s), part of the fingerprint.
        device: Where to run.
        codebook: SeiT's codebook tensor (None for full ViT-VQGAN checkpoints).
        batch_size: Images per forward.
        precision: ``fp32`` (float32, TF32 off) or ``bf16`` (bfloat16 autocast, on any device).
        decoder: ``pil`` or ``nvjpeg``: how tokenize-images decodes JPEGs for this tokenizer.
    """

    name: ClassVar[str] = "vit-vqgan"
    Settings: ClassVar[type[ModelSettings]] = ViTVQGANSettings
    needs_checkpoint: ClassVar[bool] = True
    learns_codebook: ClassVar[bool] = False

    def __init__(
        self,
        net: Any,
        checksum: str,
        device: str,
        codebook: Any = None,
        batch_size: int = 16,
        precision: str = "fp32",
        decoder: str = "pil",
    ) -> None:
        import torch

        self.device = device
        #: ``pil`` or ``nvjpeg`` (checked by :meth:`load`): read by tokenize-images.
        self.decoder = decoder
        self.precision = check_precision(precision, self.name)
        self.net = net.to(device).eval()
        self.checksum = checksum
        self._seit_codebook = None if codebook is None else torch.nn.functional.normalize(codebook.float(), dim=-1)
        self.batch_size = batch_size

    @property
    def codebook_size(self) -> int:
        """Number of codes, as the checkpoint has them (8192 for ViT-VQGAN; SeiT's file decides its own)."""
        if self._seit_codebook is not None:
            return int(self._seit_codebook.shape[0])
        return int(self.net.config.n_embed)

    @property
    def can_decode(self) -> bool:
        """SeiT's pair has no decoder."""
        return self._seit_codebook is None

    @property
    def fingerprint(self) -> str:
        """Hash of the name, the precision, the checkpoint bytes and a decoder other than ``pil``.

        The architecture follows from the checkpoint bytes. ``pil`` adds nothing, so every id made before the
        option existed stands. The device is not part of it: in fp32 a GPU and the CPU agree up to float rounding.
        """
        document = f"{self.name}\n{self.precision}\n{self.checksum}"
        if self.decoder != "pil":
            document += f"\ndecoder={self.decoder}"
        return hashlib.sha256(document.encode()).hexdigest()[:16]

    def codebook_vectors(self) -> np.ndarray:
        """The l2-normalised code vectors."""
        import torch

        with torch.no_grad():
            codes = (
                self._seit_codebook
                if self._seit_codebook is not None
                else self.net.quantizer.lookup(torch.arange(self.codebook_size, device=self.device))
            )
        return np.asarray(codes.float().cpu().numpy(), dtype=np.float32)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Images ``(B, 3, 256, 256)`` in [0, 1] → units ``(B, 32, 32)``."""
        import torch

        return self.encode_pixels(torch.from_numpy(np.ascontiguousarray(images)))

    def encode_pixels(self, pixels: Any) -> np.ndarray:
        """Like :meth:`encode`, for a float32 tensor on any device (moved to the model's one batch by batch).

        Codes stay on the device until every batch is queued, then come back in one copy: the host does not
        wait for each batch.
        """
        import torch

        outputs = []
        with torch.inference_mode(), compute_precision(self.device, self.precision):
            for start in range(0, len(pixels), self.batch_size):
                batch = pixels[start : start + self.batch_size].to(self.device, non_blocking=True)
                if self._seit_codebook is not None:
                    z = torch.nn.functional.normalize(self.net(batch).float().reshape(-1, 32), dim=-1)
                    ids = (z @ self._seit_codebook.to(z.device).t()).argmax(-1).reshape(len(batch), -1)
                else:
                    ids = self.net.encode_codes(batch)
                outputs.append(ids)
        if not outputs:
            return np.zeros((0, 32, 32), dtype=np.int64)
        codes = torch.cat(outputs).cpu().numpy()
        grid = int(np.sqrt(codes.shape[1]))
        return codes.reshape(len(pixels), grid, grid).astype(np.int64)

    def decode(self, units: np.ndarray) -> np.ndarray:
        """Units ``(B, 32, 32)`` → images ``(B, 3, 256, 256)`` in [0, 1]."""
        import torch

        if not self.can_decode:
            raise CheckpointError("this vit-vqgan checkpoint (SeiT's encoder + codebook) has no decoder")
        outputs = []
        with torch.inference_mode(), compute_precision(self.device, self.precision):
            for start in range(0, len(units), self.batch_size):
                ids = torch.from_numpy(units[start : start + self.batch_size].reshape(-1, units.shape[1] ** 2))
                outputs.append(self.net.decode_codes(ids.to(self.device)).float().cpu().numpy())
        return np.concatenate(outputs).astype(np.float32)

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: ViTVQGANSettings | None = None, *, device: str = "auto"
    ) -> ViTVQGAN:
        """Load a checkpoint file or folder (see the module docstring) with its settings (None: the defaults).

        Raises:
            CheckpointError: Missing files or keys, wrong shapes, or a pickle without ``trust_pickle``.
            ConfigError: A precision other than ``fp32`` or ``bf16``; ``decoder: nvjpeg`` where it cannot run.
        """
        from im2sp_models.image_tokenizers.vit_vqgan_net import ViTVQ, infer_config

        options = settings or ViTVQGANSettings()
        if checkpoint is None:
            raise CheckpointError("vit-vqgan needs a checkpoint (a .ckpt/.safetensors file or a folder)")
        resolved = resolve_device(device)
        precision, trust_pickle = check_precision(options.precision, cls.name), options.trust_pickle
        decoder = _checked_decoder(options.decoder, resolved)
        if checkpoint.is_dir() and (checkpoint / "tokenizer.ckpt").exists():
            return cls._load_seit(checkpoint, resolved, trust_pickle, precision, decoder)
        path = _single_file(checkpoint)
        state = {k: v for k, v in _read_state(path).items() if not k.startswith("loss.")}
        missing = [k for k in _REQUIRED if k not in state]
        if missing:
            raise CheckpointError(f"{path}: not a ViT-VQGAN checkpoint, missing {missing}")
        net = ViTVQ(infer_config(state))
        result = net.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(
                f"{path}: keys do not match the ViT-VQGAN layout (missing {result.missing_keys[:5]}, "
                f"unexpected {result.unexpected_keys[:5]})"
            )
        batch_size = options.forward_batch
        return cls(net, sha256_file(path), resolved, batch_size=batch_size, precision=precision, decoder=decoder)

    @classmethod
    def _load_seit(cls, folder: Path, device: str, trust_pickle: bool, precision: str, decoder: str) -> ViTVQGAN:
        import torch

        if not trust_pickle:
            raise CheckpointError(
                f"{folder}/tokenizer.ckpt is a pickled module: loading it runs code from the file. Set "
                "image_tokenizer.trust_pickle: true only if you trust where it came from"
            )
        try:
            net = torch.load(folder / "tokenizer.ckpt", map_location="cpu", weights_only=False)
            codebook = torch.load(folder / "codebook.ckpt", map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ModuleNotFoundError, AttributeError) as error:
            raise CheckpointError(f"{folder}: cannot load SeiT's tokenizer.ckpt/codebook.ckpt ({error})") from error
        if not isinstance(codebook, torch.Tensor) or codebook.ndim != 2 or codebook.shape[1] != 32:
            raise CheckpointError(f"{folder}/codebook.ckpt: expected an N × 32 tensor")
        checksum = sha256_file(folder / "tokenizer.ckpt") + sha256_file(folder / "codebook.ckpt")
        return cls(net, checksum, device, codebook=codebook, precision=precision, decoder=decoder)


def _checked_decoder(decoder: str, device: str) -> str:
    """``decoder`` if it can run on ``device``.

    Raises:
        ConfigError: ``nvjpeg`` without a CUDA device or without torchvision.
    """
    from im2sp_models.gpu_jpeg import nvjpeg_problem

    problem = nvjpeg_problem(device) if decoder == "nvjpeg" else None
    if problem is not None:
        raise ConfigError(f"vit-vqgan: decoder nvjpeg cannot run here: {problem}; set decoder: pil (the default)")
    return decoder


def _single_file(checkpoint: Path) -> Path:
    if checkpoint.is_file():
        return checkpoint
    if not checkpoint.is_dir():
        raise CheckpointError(f"{checkpoint}: no such checkpoint file or folder")
    found = sorted([*checkpoint.glob("*.ckpt"), *checkpoint.glob("*.safetensors")])
    if len(found) != 1:
        raise CheckpointError(f"{checkpoint}: expected one .ckpt or .safetensors file, found {[f.name for f in found]}")
    return found[0]
