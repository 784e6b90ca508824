"""Deterministic shard plans: fixed-size shards per split, with ids that other splits cannot move."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from storage.hashing import fingerprint_rows


@dataclass(frozen=True)
class PlanItem:
    """One item to place in a shard: its id, split and content hash; ``group``: what it must share a shard with.

    Speech items planned by image carry their image id as ``group`` (``storage/manifests.py``).
    """

    id: str
    split: str
    sha256: str
    group: str = ""


@dataclass(frozen=True)
class PlannedShard:
    """One pipeline shard: which items, in which order, and the fingerprint of exactly those inputs."""

    modality: str
    shard_id: str
    split: str
    items: tuple[str, ...]
    fingerprint: str


def plan_shards(
    modality: str, items: Iterable[PlanItem], shard_size: int, *, by_group: bool = False
) -> list[PlannedShard]:
    """Cut items into shards of about ``shard_size``, per split, in id order (or group by group).

    Shard ids are ``<split>-<index:05d>``; items are ordered by id inside their split, so adding an item
    to one split never renames or refills another split's shards. Each shard's fingerprint hashes its
    member ids and content hashes: a shard whose inputs changed gets a new fingerprint and is rebuilt,
    the others stay committed.

    Args:
        modality: ``image`` or ``speech``.
        items: Items that passed the manifest checks.
        shard_size: Items per shard (the last shard of a split may hold fewer).
        by_group: Keep each group's items in one shard: items ordered by (group, id), whole groups packed
            into a shard while it stays within ``shard_size`` (a group larger than that gets a shard of its
            own). Groups are image ids, and image shards are cut in image id order, so a speech shard then
            holds the utterances of consecutive images, of one or two image shards.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    by_split: dict[str, list[PlanItem]] = defaultdict(list)
    for item in items:
        by_split[item.split].append(item)
    shards = []
    for split in sorted(by_split):
        if by_group:
            chunks = _group_chunks(sorted(by_split[split], key=lambda item: (item.group, item.id)), shard_size)
        else:
            members = sorted(by_split[split], key=lambda item: item.id)
            chunks = [members[start : start + shard_size] for start in range(0, len(members), shard_size)]
        for index, chunk in enumerate(chunks):
            shards.append(
                PlannedShard(
                    modality=modality,
                    shard_id=f"{split}-{index:05d}",
                    split=split,
                    items=tuple(item.id for item in chunk),
                    fingerprint=fingerprint_rows((modality, item.id, item.sha256) for item in chunk),
                )
            )
    return shards


def _group_chunks(members: list[PlanItem], shard_size: int) -> list[list[PlanItem]]:
    """Consecutive whole groups of ``members`` (sorted by group), each chunk within ``shard_size`` if it can be."""
    chunks: list[list[PlanItem]] = []
    current: list[PlanItem] = []
    for _, group in itertools.groupby(members, key=lambda item: item.group):
        whole = list(group)
        if current and len(current) + len(whole) > shard_size:
            chunks.append(current)
            current = []
        current.extend(whole)
    if current:
        chunks.append(current)
    return chunks


def split_of(shard_id: str) -> str:
    """The split of a shard id made by :func:`plan_shards` (``test-clean-00003`` → ``test-clean``).

    The index is cut off at the last hyphen: split names may hold hyphens, the index never does.
    """
    split, hyphen, index = shard_id.rpartition("-")
    if not hyphen or not split or not index.isdigit():
        raise ValueError(f"not a shard id of the form <split>-<index>: {shard_id!r}")
    return split
