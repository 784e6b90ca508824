"""The errors models raise, from the project's one error family (``storage.errors``)."""

from __future__ import annotations

from storage.errors import CheckpointError, Im2SpError, ItemRejected, NotEnoughDataError, UnknownModelError

__all__ = ["CheckpointError", "Im2SpError", "ItemRejected", "NotEnoughDataError", "UnknownModelError", "one_line"]


def one_line(error: Exception, limit: int = 300) -> str:
    """An error's message on one line, at most ``limit`` characters (torch's and pydantic's span several)."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
