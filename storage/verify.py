"""Checking every committed shard of a store against its commit marker (``im2sp verify``).

It also reads the control files: each kind's ``current.json`` (must parse, name an existing version and only
shards that have a marker) and the current version's ``version.json`` (must parse). Those are not flagged: the
next run of the flow that writes the kind rewrites them (publishing rewrites the pointer; a damaged
``version.json`` is rewritten when the version is opened for building).

Readers already re-hash each shard they open; this walks the whole store at once, so bit rot is found before
a reader needs the data. A damaged shard gets a flag (``<version>/damaged/<shard>.json``): its data stays
where it is (readers refuse it anyway), and the next run of the flow that writes it rebuilds exactly the
flagged shards, since :meth:`StoreVersion.needs_build` treats a flagged shard as missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from storage.errors import Im2SpError
from storage.kinds import REBUILT_BY, SHARED, VOCODERS
from storage.reader import verify_shard
from storage.store import Store
from storage.versions import StoreVersion, current_pointer, list_versions
from storage.vocoder_store import current_vocoder, pointed_codebooks, pointer_key

#: The ``shard_id`` of a :class:`Damage` that is a control file rather than a shard.
CONTROL_FILES = ("current.json", "version.json")


@dataclass(frozen=True)
class Damage:
    """One shard whose files or marker do not match: where it is, why, and which flow rebuilds it."""

    dataset: str
    kind: str
    version: str
    shard_id: str
    reason: str
    url: str

    @property
    def rebuilt_by(self) -> str:
        """The flow to rerun."""
        return REBUILT_BY.get(self.kind, "the flow that wrote it")

    @property
    def is_control(self) -> bool:
        """Whether this is a damaged ``current.json`` or ``version.json`` rather than a shard."""
        return self.shard_id in CONTROL_FILES


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify_store`` checked and found."""

    versions: int
    shards: int
    damaged: tuple[Damage, ...]


def verify_store(store: Store, datasets: Iterable[str], *, flag: bool = True) -> VerifyReport:
    """Re-hash every committed shard of every version of the datasets' stores (and the shared ones).

    Args:
        store: The store root.
        datasets: Dataset names from the config (``_shared`` is always included).
        flag: Leave a ``damaged`` flag on each damaged shard so the next run rebuilds it.
    """
    versions = shards = 0
    damaged: list[Damage] = []
    for dataset in [*datasets, SHARED]:
        for kind in store.list_dirs(dataset):
            damaged += _control_damage(store, dataset, kind)
            for version in list_versions(store, dataset, kind):
                versions += 1
                for shard_id in version.marker_ids():
                    shards += 1
                    try:
                        verify_shard(version, shard_id)
                    except Im2SpError as error:
                        url = store.url_of(version.shard_key(shard_id))
                        damaged.append(Damage(dataset, kind, version.version, shard_id, str(error), url))
                        if flag:
                            _flag(version, shard_id, str(error))
    return VerifyReport(versions, shards, tuple(damaged))


def _control_damage(store: Store, dataset: str, kind: str) -> list[Damage]:
    """Damaged control files of one kind: its pointer, and the ``version.json`` of the version it names.

    Other versions' ``version.json`` are not read here: no reader needs them, and no flow would rewrite them.
    Learned vocoders have a pointer per speech codebook (``current-<codebook>.json``), each checked the same way.
    """
    if dataset == SHARED and kind == VOCODERS:
        return _vocoder_pointer_damage(store)
    url = store.url_of(f"{dataset}/{kind}/current.json")
    try:
        found = current_pointer(store, dataset, kind)
    except Im2SpError as error:  # unreadable, or a format this code does not know
        return [Damage(dataset, kind, "-", "current.json", str(error), url)]
    if found is None:
        return []
    current, listed = found

    def pointer_damage(reason: str) -> Damage:
        return Damage(dataset, kind, current.version, "current.json", reason, url)

    if not isinstance(listed, list) or not all(isinstance(s, str) and s for s in listed):
        return [pointer_damage(f"its shards are not a list of shard ids: {listed!r}")]
    if not store.exists(f"{current.prefix}/version.json"):
        return [pointer_damage(f"names version {current.version}, which does not exist")]
    missing = [s for s in listed if not store.exists(current.marker_key(s))]
    damaged = [pointer_damage(f"names shard(s) {', '.join(missing[:3])} without a commit marker")] if missing else []
    try:
        current.info()
    except Im2SpError as error:
        where = f"{current.url}/version.json"
        damaged.append(Damage(dataset, kind, current.version, "version.json", str(error), where))
    return damaged


def _vocoder_pointer_damage(store: Store) -> list[Damage]:
    """Vocoder pointers that cannot be read or name no finished vocoder (train-vocoder rewrites them)."""
    damaged = []
    for codebook in pointed_codebooks(store):
        try:
            current_vocoder(store, codebook)
        except Im2SpError as error:
            url = store.url_of(pointer_key(codebook))
            damaged.append(Damage(SHARED, VOCODERS, "-", "current.json", str(error), url))
    return damaged


def _flag(version: StoreVersion, shard_id: str, reason: str) -> None:
    version.store.write_json(
        version.damaged_key(shard_id),
        {"shard_id": shard_id, "reason": reason, "found_at": datetime.now(UTC).isoformat(timespec="seconds")},
    )
