"""Progress reporting that the core can call without knowing who listens (a CLI bar, a log, nothing)."""

from __future__ import annotations

from typing import Protocol


class ProgressSink(Protocol):
    """Receives progress of long work: one task at a time, with a known total."""

    def start(self, label: str, total: int) -> None:
        """Begin a task of ``total`` steps."""

    def advance(self, steps: int) -> None:
        """Record ``steps`` more steps done."""

    def finish(self) -> None:
        """End the current task."""


class _Silent:
    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, steps: int) -> None:
        pass

    def finish(self) -> None:
        pass


_sink: ProgressSink = _Silent()


def set_sink(sink: ProgressSink | None) -> None:
    """Install the process-wide progress sink (None restores silence)."""
    global _sink
    _sink = sink if sink is not None else _Silent()


def sink() -> ProgressSink:
    """Return the process-wide progress sink."""
    return _sink
