"""The ``device`` setting (``auto``/``cpu``/``cuda``) as every model reads it."""

from __future__ import annotations


def resolve_device(device: str) -> str:
    """Turn ``auto`` into ``cuda`` when a GPU is visible to torch, else ``cpu``."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"
