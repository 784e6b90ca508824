"""Small, serialisable references passed between a flow and its per-shard tasks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShardJob:
    """One planned shard: its items (id, path relative to the dataset root, sha256) and input fingerprint."""

    dataset: str
    shard_id: str
    input_fingerprint: str
    items: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class ShardOutcome:
    """What a shard task did: a small reference for the flow."""

    dataset: str
    shard_id: str
    built: bool
    stored: int
    rejected: int
    stored_bytes: int
