"""The ``device`` and ``precision`` settings as every model reads them.

``precision`` is part of what a model computes, so it is part of every fingerprint that names its stores:
``fp32`` (the default, as the official ViT-VQGAN and fairseq HuBERT code run) computes in float32 with TF32
off, so a GPU gives the CPU's results up to float rounding; ``bf16`` runs the forward under bfloat16
autocast on the device it runs on (faster on GPUs, and different codes and features).
"""

from __future__ import annotations

import contextlib
from typing import Any

from storage.errors import ConfigError

#: The precisions a model can run in; the first is the default.
PRECISIONS = ("fp32", "bf16")


def resolve_device(device: str) -> str:
    """Turn ``auto`` into ``cuda`` when a GPU is visible to torch, else ``cpu``."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_precision(precision: object, model: str) -> str:
    """Return ``precision`` if a model can run in it.

    Raises:
        ConfigError: Anything but ``fp32`` or ``bf16``.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"{model}: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return str(precision)


def compute_precision(device: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context a model's forward runs in: bfloat16 autocast for ``bf16``, exact float32 for ``fp32``.

    On CUDA, ``fp32`` turns TF32 off for matmuls and convolutions (cuDNN allows it by default): TF32 keeps
    10 mantissa bits, enough to move codes and k-means labels. The switch is process-wide and is not put
    back afterwards: restoring it from concurrent threads would race and could leave a forward in TF32.
    """
    import torch

    device_type = device.split(":")[0]
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return contextlib.nullcontext()
