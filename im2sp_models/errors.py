"""The errors models raise, from the project's one error family (``storage.errors``)."""

from __future__ import annotations

from storage.errors import CheckpointError, Im2SpError, ItemRejected, NotEnoughDataError, UnknownModelError

__all__ = ["CheckpointError", "Im2SpError", "ItemRejected", "NotEnoughDataError", "UnknownModelError"]
