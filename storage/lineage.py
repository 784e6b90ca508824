"""Lineage: the input shards a derived shard reads, and the check a step makes before it commits one.

A step never trusts an input by its name or by ``current``: each input shard is named with the fingerprint the
current plan expects its commit marker to carry (:class:`InputShard`). Before a shard is built, and again just
before it commits, every input marker is compared with that fingerprint; a missing marker, one of another plan
or one ``im2sp verify`` flagged is refused with :class:`~storage.errors.StaleInputError`, whose one line names
the flow to rerun. A derived shard's own input fingerprint hashes its inputs' expected fingerprints
(:func:`lineage_fingerprint`), so a shard built from inputs of another plan is rebuilt when they catch up.

Retention and the storage report ask :func:`kept_by_downstream` which versions something still reads: those
named (in ``version.json``'s ``produced_by``) by a current downstream version or by training shards a training
run was trained on, transitively. No such version is ever deleted or called reclaimable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from storage.errors import CorruptShardError, DamagedPointerError, Im2SpError, StaleInputError
from storage.hashing import fingerprint
from storage.kinds import (
    IMAGE_UNITS,
    MANIFESTS,
    REBUILT_BY,
    SHARED,
    SPEECH_FEATURES,
    SPEECH_UNITS,
    TRAIN_RUNS,
    TRAINING_SHARDS,
)
from storage.marker import CommitMarker
from storage.store import Store
from storage.versions import StoreVersion, current_version, list_versions

#: What a dataset store kind's ``version.json`` names of other kinds: ``produced_by`` key → the kind it names.
UPSTREAM: dict[str, dict[str, str]] = {
    TRAINING_SHARDS: {"manifests": MANIFESTS, "image_units": IMAGE_UNITS, "speech_units": SPEECH_UNITS},
    SPEECH_UNITS: {"features": SPEECH_FEATURES},
}
#: What a version.json that cannot be read costs a reader here: nothing is kept for it (it names nothing).
_UNREADABLE = (Im2SpError, OSError, ValueError, KeyError, TypeError, AttributeError)


@dataclass(frozen=True)
class InputShard:
    """One shard a step reads, and the input fingerprint the current plan expects its marker to carry.

    Attributes:
        kind: Its store kind (``image-units``, ``speech-units``, ``speech-features``).
        version: The version of that kind it is read from.
        shard_id: The shard.
        fingerprint: The ``input_fingerprint`` its commit marker must carry (its planned shard's fingerprint).
    """

    kind: str
    version: str
    shard_id: str
    fingerprint: str


def lineage_fingerprint(own: str, inputs: Iterable[InputShard]) -> str:
    """A derived shard's input fingerprint: its own planned items plus what each input shard is expected to hold."""
    expected = sorted([i.kind, i.version, i.shard_id, i.fingerprint] for i in inputs)
    return fingerprint({"items": own, "inputs": expected})


def input_problem(store: Store, dataset: str, expected: InputShard) -> tuple[str, CommitMarker | None]:
    """Why an input shard cannot be read as the plan expects (empty when it can), and its marker."""
    version = StoreVersion(store, dataset, expected.kind, expected.version)
    try:
        marker = version.marker(expected.shard_id)
    except CorruptShardError:
        return "has an unreadable commit marker", None
    if marker is None:
        return "is not committed", None
    if marker.input_fingerprint != expected.fingerprint:
        return "was built for another shard plan (its items or their files changed since)", marker
    if store.exists(version.damaged_key(expected.shard_id)):
        return "is flagged damaged by im2sp verify", marker
    return "", marker


def refusal(dataset: str, problems: list[tuple[InputShard, str]], reader: str) -> StaleInputError:
    """The one-line error for input shards that are not what the plan expects: the first, the count, what to rerun."""
    first, why = problems[0]
    flows = sorted({REBUILT_BY[shard.kind] for shard, _ in problems})
    more = f" (and {len(problems) - 1} more input shard(s))" if len(problems) > 1 else ""
    return StaleInputError(
        f"{dataset}: {first.kind} shard {first.shard_id} of version {first.version} {why}{more}; "
        f"rerun {' and '.join(flows)}, then {reader}"
    )


def checked_input(store: Store, dataset: str, expected: InputShard, reader: str) -> CommitMarker:
    """The input shard's commit marker, once it carries the fingerprint the plan expects.

    Args:
        store: The store root.
        dataset: The dataset both shards belong to.
        expected: The input shard and its expected fingerprint.
        reader: The flow that reads it (named in the message: rerun it after the input's flow).

    Raises:
        StaleInputError: The input is not committed, of another plan, unreadable or flagged damaged.
    """
    why, marker = input_problem(store, dataset, expected)
    if why or marker is None:
        raise refusal(dataset, [(expected, why)], reader)
    return marker


def check_inputs(store: Store, dataset: str, inputs: Iterable[InputShard], reader: str) -> None:
    """Check every input shard before any work starts, refusing once for all that are not up to date.

    Raises:
        StaleInputError: Naming the first such shard, how many there are and every flow to rerun.
    """
    problems = []
    for expected in dict.fromkeys(inputs):  # several derived shards may read one input: checked once
        why, _ = input_problem(store, dataset, expected)
        if why:
            problems.append((expected, why))
    if problems:
        raise refusal(dataset, problems, reader)


def unchanged_since(store: Store, dataset: str, read: dict[InputShard, CommitMarker], reader: str) -> None:
    """Check, just before a commit, that every input shard still has the marker it was read under.

    A concurrent rebuild of an input (a retokenize, ``im2sp verify`` and its rerun) between the read and the
    commit would otherwise leave a derived shard that matches neither the old input nor the new one.

    Raises:
        StaleInputError: An input shard was rebuilt, removed or flagged while it was read.
    """
    for expected, marker in read.items():
        now = checked_input(store, dataset, expected, reader)
        if now != marker:
            raise refusal(dataset, [(expected, "was rebuilt while it was read")], reader)


def trained_on(store: Store) -> set[tuple[str, str]]:
    """The (dataset, training-shards version) pairs some training run was trained on (its ``version.json``)."""
    used: set[tuple[str, str]] = set()
    with contextlib.suppress(*_UNREADABLE):
        for run in list_versions(store, SHARED, TRAIN_RUNS):
            with contextlib.suppress(*_UNREADABLE):
                data = run.info()["produced_by"]["data"]["versions"]
                used.update((str(dataset), str(version)) for dataset, version in data.items())
    return used


def _roots(store: Store, dataset: str) -> list[tuple[str, str, str]]:
    """The downstream versions whose inputs must stay: (kind, version, why it is read)."""
    roots = []
    for kind in UPSTREAM:
        try:
            current = current_version(store, dataset, kind)
        except DamagedPointerError:  # which one is current is unknown: every version of the kind may be
            roots += [(kind, v.version, "its current pointer is damaged") for v in list_versions(store, dataset, kind)]
            continue
        if current is not None:
            roots.append((kind, current.version, "current"))
    trained = sorted(version for name, version in trained_on(store) if name == dataset)
    roots += [(TRAINING_SHARDS, version, "a training run was trained on it") for version in trained]
    return roots


def kept_by_downstream(store: Store, dataset: str) -> dict[tuple[str, str], str]:
    """Every (kind, version) of a dataset that a downstream version still reads, with the reason, for retention.

    Roots are each downstream kind's current version and the training shards any training run was trained on
    (kept themselves); what a root's ``version.json`` names is kept, and what that names in turn (training
    shards → speech units → speech features).
    """
    todo = _roots(store, dataset)
    kept = {(kind, version): why for kind, version, why in todo if why != "current"}
    while todo:
        kind, version, why = todo.pop()
        try:
            produced_by = StoreVersion(store, dataset, kind, version).info()["produced_by"]
        except _UNREADABLE:
            continue
        for key, upstream in UPSTREAM.get(kind, {}).items():
            name = produced_by.get(key)
            if not isinstance(name, str) or (upstream, name) in kept:
                continue
            kept[(upstream, name)] = f"named by {kind} {version} ({why})"
            todo.append((upstream, name, f"kept for {kind} {version}"))
    return kept
