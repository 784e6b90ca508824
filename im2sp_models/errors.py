"""Model-side errors; the project's error family lives in ``storage.errors`` and is re-used here."""

from __future__ import annotations

from storage.errors import Im2SpError, NotEnoughDataError, UnknownModelError


class ItemRejected(Im2SpError):  # noqa: N818 - a verdict on one item, recorded as a rejection
    """One input (an image, a wav) cannot be used; the message is the recorded reason."""


class CheckpointError(Im2SpError):
    """A checkpoint is missing, of the wrong layout, or refused (pickles without ``trust_pickle``)."""


__all__ = ["CheckpointError", "ItemRejected", "NotEnoughDataError", "UnknownModelError"]
