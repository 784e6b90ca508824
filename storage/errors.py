"""The project's one error family, for models and storage alike.

Every error a user can see, with a message that says what to do. ``im2sp_models.errors`` re-exports the
model-side ones; no other module defines an error class.
"""

from __future__ import annotations


class Im2SpError(Exception):
    """Base class of every error the project raises on purpose: a user can cause it, the message says the fix.

    ``im2sp`` prints the message on one line and exits with ``exit_code``: 1 for problems with data, model
    files or the store, 2 for usage and configuration mistakes.
    """

    exit_code = 1


class ConfigError(Im2SpError):
    """The pipeline configuration is invalid; the message names the bad key."""

    exit_code = 2


class UsageError(Im2SpError):
    """A command was called wrongly (an unknown flow name); the message lists what is accepted."""

    exit_code = 2


class SourceFormatError(Im2SpError):
    """A dataset file (JSON, text list, CSV) cannot be parsed; the message names file and line."""


class UnsupportedFormatError(Im2SpError):
    """A store was written with a ``format_version`` this code does not know."""


class CorruptShardError(Im2SpError):
    """A committed shard does not match its commit marker (missing file, size or checksum mismatch)."""


class DamagedPointerError(CorruptShardError):
    """A ``current.json`` or ``version.json`` cannot be read; rerunning the flow that writes it rewrites it."""


class NotCommittedError(Im2SpError):
    """A reader asked for a shard or version that has no commit marker yet."""


class UnknownModelError(Im2SpError):
    """A registry has no entry of the requested name."""

    exit_code = 2


class MissingInputError(Im2SpError):
    """A flow's input has not been built yet; the message names the flow to run first."""


class NotEnoughDataError(Im2SpError):
    """There is too little data for what the config asks (more codes than training vectors); the key is named."""


class StoreAccessError(Im2SpError):
    """The store refused access or cannot be reached; check its URL and credentials."""


class TooManyRejectedError(Im2SpError):
    """More of a dataset's items were rejected than ``max_rejected_fraction`` allows: a folder is likely wrong."""


class ItemRejected(Im2SpError):  # noqa: N818 - a verdict on one item, recorded as a rejection
    """One input (an image, a wav) cannot be used; the message is the recorded reason."""


class CheckpointError(Im2SpError):
    """A checkpoint is missing, of the wrong layout, or refused (pickles without ``trust_pickle``)."""


class SampleRejected(ItemRejected, ValueError):  # noqa: N818 - a verdict on one sample, not a crash
    """Raised by a writer's ``_add`` when one sample cannot be stored; recorded as a rejection."""


class StaleInputError(Im2SpError):
    """An input shard is missing or was built for other inputs than the current plan expects.

    A step checks every input shard's commit marker before it commits (docs/RELIABILITY.md "Lineage"); the
    message names the flow whose rerun brings the input up to date.
    """
