"""The project's error family: every error a user can see, with a message that says what to do."""

from __future__ import annotations


class Im2SpError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(Im2SpError):
    """The pipeline configuration is invalid; the message names the bad key."""


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
