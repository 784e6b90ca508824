"""Versioned store locations and the ``current`` pointer.

Layout (docs/FORMAT.md)::

    <root>/<dataset>/<kind>/<version>/version.json        what produced this version
    <root>/<dataset>/<kind>/<version>/shards/<shard_id>/  data, written by exactly one task
    <root>/<dataset>/<kind>/<version>/commits/<shard_id>.json   commit marker, written last
    <root>/<dataset>/<kind>/current.json                  pointer to the complete version readers use

A version is named by the fingerprint of what produced it, so a new model or codebook never overwrites
an old version; the pointer moves (atomically) only once every planned shard of the new one is committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any, NoReturn

from storage.errors import CorruptShardError, DamagedPointerError, Im2SpError, NotCommittedError
from storage.format import FORMAT_VERSION, KNOWN_FORMAT_VERSIONS, check_format_version
from storage.kinds import REBUILT_BY, SHARED
from storage.marker import CommitMarker
from storage.store import Store


def _damaged(store: Store, key: str, kind: str, why: str) -> NoReturn:
    flow = REBUILT_BY.get(kind, "the flow that writes it")
    raise DamagedPointerError(f"{store.url_of(key)} is damaged ({why}); rerun {flow} to rewrite it")


def read_control(store: Store, key: str, kind: str) -> dict[str, Any]:
    """Read a control file (``current.json``, ``version.json``) of a store kind, refusing unknown formats.

    Raises:
        DamagedPointerError: If it is not a JSON object (truncated, overwritten): the message names the flow
            whose rerun rewrites it.
        UnsupportedFormatError: If its format_version is unknown.
    """
    try:
        document = store.read_json(key)
    except (ValueError, UnicodeDecodeError) as error:  # json.JSONDecodeError is a ValueError
        document = error
    if not isinstance(document, dict):
        _damaged(store, key, kind, f"not JSON: {document}" if isinstance(document, Exception) else "not a JSON object")
    if "format_version" not in document:  # every control file has one; an unknown number is refused below
        _damaged(store, key, kind, "no format_version")
    check_format_version(document.get("format_version"), store.url_of(key))
    return document


class StoreVersion:
    """One version of one kind of store for one dataset.

    Args:
        store: The store root.
        dataset: Dataset name (``coco``, ``flickr8k``).
        kind: Store kind (``manifests``, ``image-units``, ``speech-features``, …).
        version: Version id, normally a fingerprint.
    """

    def __init__(self, store: Store, dataset: str, kind: str, version: str) -> None:
        for label, value in (("dataset", dataset), ("kind", kind), ("version", version)):
            if not value or "/" in value or value.startswith("."):
                raise ValueError(f"invalid {label} name for a store location: {value!r}")
        self.store = store
        self.dataset = dataset
        self.kind = kind
        self.version = version
        self.prefix = f"{dataset}/{kind}/{version}"

    def __repr__(self) -> str:
        return f"StoreVersion({self.store.url_of(self.prefix)!r})"

    @property
    def url(self) -> str:
        """URL of the version folder."""
        return self.store.url_of(self.prefix)

    def shard_key(self, shard_id: str) -> str:
        """Store key of the folder a shard writes its data into."""
        return f"{self.prefix}/shards/{shard_id}"

    def marker_key(self, shard_id: str) -> str:
        """Store key of a shard's commit marker."""
        return f"{self.prefix}/commits/{shard_id}.json"

    def ensure_created(self, produced_by: dict[str, Any]) -> None:
        """Write ``version.json`` once, recording what produced this version (again, if it was damaged)."""
        key = f"{self.prefix}/version.json"
        if self.store.exists(key):
            try:
                self.info()
                return
            except DamagedPointerError:
                pass  # rewritten below: its content follows from the version's producer
        self.store.write_json(
            key,
            {
                "format_version": FORMAT_VERSION,
                "dataset": self.dataset,
                "kind": self.kind,
                "version": self.version,
                "produced_by": produced_by,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    def info(self) -> dict[str, Any]:
        """Read ``version.json``, refusing unknown formats and damaged files (:func:`read_control`)."""
        return read_control(self.store, f"{self.prefix}/version.json", self.kind)

    def lock_key(self, shard_id: str) -> str:
        """Store key of the lock a run holds while it checks and builds a shard (``storage/locks.py``)."""
        return f"{self.prefix}/locks/{shard_id}.lock"

    def damaged_key(self, shard_id: str) -> str:
        """Store key of the flag ``im2sp verify`` leaves on a shard whose files fail their checksums."""
        return f"{self.prefix}/damaged/{shard_id}.json"

    def marker(self, shard_id: str) -> CommitMarker | None:
        """Return a shard's commit marker, or None when the shard is not committed.

        Raises:
            CorruptShardError: If the marker is not valid JSON or not a valid marker.
        """
        key = self.marker_key(shard_id)
        if not self.store.exists(key):
            return None
        try:
            document = self.store.read_json(key)
        except ValueError as error:  # bytes flipped in the marker itself
            raise CorruptShardError(f"{self.store.url_of(key)}: commit marker unreadable ({error})") from None
        if not isinstance(document, dict):
            raise CorruptShardError(f"{self.store.url_of(key)}: commit marker is not a JSON object")
        return CommitMarker.from_json(document, self.store.url_of(key))

    def require_marker(self, shard_id: str) -> CommitMarker:
        """Return a shard's commit marker.

        Raises:
            NotCommittedError: If the shard has no marker.
        """
        marker = self.marker(shard_id)
        if marker is None:
            raise NotCommittedError(f"shard {shard_id!r} of {self.url} is not committed; run its flow first")
        return marker

    def marker_ids(self) -> list[str]:
        """Shard ids that have a commit marker file, sorted, without reading (or checking) the markers."""
        return sorted(
            info.relpath.removesuffix(".json")
            for info in self.store.walk_files(f"{self.prefix}/commits")
            if info.relpath.endswith(".json") and "/" not in info.relpath
        )

    def committed(self) -> dict[str, CommitMarker]:
        """Return every commit marker of this version, by shard id."""
        return {shard_id: self.require_marker(shard_id) for shard_id in self.marker_ids()}

    def needs_build(self, shard_id: str, input_fingerprint: str) -> bool:
        """Whether a shard must be (re)built.

        It must when it has no marker, a marker for other inputs or an unreadable one, or when ``im2sp verify``
        flagged it damaged.
        """
        try:
            marker = self.marker(shard_id)
        except CorruptShardError:
            return True
        if marker is None or marker.input_fingerprint != input_fingerprint:
            return True
        return self.store.exists(self.damaged_key(shard_id))

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Remove committed shards that are no longer planned (marker first, then data); return their ids."""
        wanted = set(keep)
        dropped = sorted(shard for shard in self.committed() if shard not in wanted)
        for shard_id in dropped:
            self.store.remove(self.marker_key(shard_id))
            self.store.remove(self.shard_key(shard_id))
        return dropped

    def publish(self, expected_shards: Iterable[str]) -> None:
        """Point ``current`` at this version, once every expected shard is committed.

        A pointer that already names this version with these shards (in a format this code reads) is left
        untouched, so a rerun that changed nothing writes nothing; ``switched_at`` keeps the time of the switch.

        Raises:
            NotCommittedError: If any expected shard has no marker; the pointer is left as it was.
        """
        expected = sorted(set(expected_shards))
        committed = self.committed()
        missing = [s for s in expected if s not in committed]
        if missing:
            raise NotCommittedError(
                f"{self.url} is incomplete: {len(missing)} shard(s) not committed ({', '.join(missing[:5])}…); "
                "rerun the flow to build them"
            )
        pointer = {"format_version": FORMAT_VERSION, "version": self.version, "shards": expected}
        found = _pointer_content(self.store, self.dataset, self.kind)
        if (
            found is not None
            and found.pop("format_version") in KNOWN_FORMAT_VERSIONS
            and found
            == {
                "version": self.version,
                "shards": expected,
            }
        ):
            return  # already names this version and these shards (in any format this code reads): nothing written
        self.store.write_json(
            f"{self.dataset}/{self.kind}/current.json",
            {**pointer, "switched_at": datetime.now(UTC).isoformat(timespec="seconds")},
        )


def _pointer_content(store: Store, dataset: str, kind: str) -> dict[str, Any] | None:
    """The meaningful fields of the ``current`` pointer (all but ``switched_at``); None if absent or damaged."""
    key = f"{dataset}/{kind}/current.json"
    try:
        document = store.read_json(key) if store.exists(key) else None
    except (OSError, ValueError, UnicodeDecodeError):  # unreadable: publishing rewrites it
        return None
    if not isinstance(document, dict):
        return None
    return {field: document.get(field) for field in ("format_version", "version", "shards")}


def current_pointer(store: Store, dataset: str, kind: str) -> tuple[StoreVersion, object] | None:
    """Return the version the ``current`` pointer names and its ``shards`` value, or None when none was published.

    Raises:
        DamagedPointerError: If the pointer cannot be read or names no valid version.
    """
    key = f"{dataset}/{kind}/current.json"
    if not store.exists(key):
        return None
    pointer = read_control(store, key, kind)
    name = pointer.get("version")
    if isinstance(name, str):
        with contextlib.suppress(ValueError):  # a name StoreVersion refuses: damaged, below
            return StoreVersion(store, dataset, kind, name), pointer.get("shards")
    _damaged(store, key, kind, f"no valid version name: {name!r}")


def current_version(store: Store, dataset: str, kind: str, *, damaged_as_missing: bool = False) -> StoreVersion | None:
    """Return the version the ``current`` pointer names, or None when none was published.

    Args:
        store: The store root.
        dataset: Dataset name.
        kind: Store kind.
        damaged_as_missing: Return None for a damaged pointer instead of raising: for the flow that publishes
            this kind, whose run then rewrites it.

    Raises:
        DamagedPointerError: If the pointer cannot be read or names no valid version.
    """
    try:
        found = current_pointer(store, dataset, kind)
    except DamagedPointerError:
        if damaged_as_missing:
            return None
        raise
    return found[0] if found else None


def current_learned_from(
    store: Store, kind: str, inputs: str, marker_key: str | None = None
) -> tuple[StoreVersion, dict[str, Any]] | None:
    """The current shared model of ``kind`` and its ``produced_by`` when it was learned from exactly ``inputs``.

    ``inputs`` is the fingerprint a learn flow records in ``produced_by.inputs`` (FORMAT §8, §11); an empty one
    matches nothing. The model's ``all`` shard must also be intact: committed for the fingerprint its marker
    carries (``produced_by[marker_key]``, or the version name when ``marker_key`` is None) and not flagged
    damaged. Else None: the caller learns the model again.
    """
    version = current_version(store, SHARED, kind)
    if not inputs or version is None:
        return None
    made: dict[str, Any] = version.info()["produced_by"]
    marker = version.version if marker_key is None else str(made.get(marker_key))
    if made.get("inputs") != inputs or version.needs_build("all", marker):
        return None
    return version, made


def list_versions(store: Store, dataset: str, kind: str) -> list[StoreVersion]:
    """Return every version folder of a dataset's store kind, published or not."""
    return [StoreVersion(store, dataset, kind, name) for name in store.list_dirs(f"{dataset}/{kind}")]


def _created_at(version: StoreVersion) -> str:
    try:
        return str(version.info().get("created_at", ""))
    except (Im2SpError, OSError, ValueError):  # no or unreadable version.json: an abandoned folder, oldest of all
        return ""


def stale_versions(store: Store, dataset: str, kind: str) -> list[StoreVersion]:
    """Every version of a dataset's store kind except the current one, newest first."""
    current = current_version(store, dataset, kind)  # strict: with a damaged pointer every version would look stale
    others = [v for v in list_versions(store, dataset, kind) if current is None or v.version != current.version]
    return sorted(others, key=_created_at, reverse=True)


def apply_retention(
    store: Store, dataset: str, kind: str, keep: int, read_downstream: Collection[str] = ()
) -> list[str]:
    """Delete old versions so that at most ``keep`` remain (the current one included); return the deleted ids.

    Only versions created before the current one are candidates: a newer, unpublished version may be a build
    in progress (or one to resume), so it stays. Nothing is deleted while no version is published. Versions in
    ``read_downstream`` (named by a current downstream version: ``storage.lineage.kept_by_downstream``) are
    never candidates and take no place among the ``keep``.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1 (the current version)")
    current = current_version(store, dataset, kind, damaged_as_missing=True)
    if current is None:  # nothing published, or a damaged pointer: delete nothing
        return []
    published_at = _created_at(current)
    older = [
        v
        for v in stale_versions(store, dataset, kind)
        if _created_at(v) < published_at and v.version not in read_downstream
    ]
    deleted = []
    for version in older[keep - 1 :]:
        store.remove(version.prefix)
        deleted.append(version.version)
    return deleted
