"""Comparing two local stores file by file (content digests, timestamps in metadata aside)."""

from __future__ import annotations

from pathlib import Path

from storage.compare import content_digests, differences
from storage.store import Store

__all__ = ["differences", "snapshot"]


def snapshot(root: Path, prefix: str = "") -> dict[str, str]:
    """Every file below ``root/prefix`` by store key relative to it, as its content digest."""
    return content_digests(Store(str(root)), prefix)
