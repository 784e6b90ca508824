"""Checking every committed shard of a store against its commit marker (``im2sp verify``).

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
from storage.kinds import SHARED
from storage.reader import verify_shard
from storage.store import Store
from storage.versions import StoreVersion, list_versions

#: The flow whose rerun rebuilds a damaged shard of each store kind.
REBUILT_BY = {
    "manifests": "build-manifests",
    "image-codebook": "learn-image-codebook",
    "image-units": "tokenize-images",
    "speech-features": "extract-speech-features",
    "speech-codebook": "learn-speech-codebook",
    "speech-units": "unitize-speech",
    "training-shards": "build-training-shards",
    "train-runs": "train-im2sp",
}


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


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify_store`` checked and found."""

    versions: int
    shards: int
    damaged: tuple[Damage, ...]


def _shard_ids(version: StoreVersion) -> list[str]:
    return sorted(
        info.relpath.removesuffix(".json")
        for info in version.store.walk_files(f"{version.prefix}/commits")
        if info.relpath.endswith(".json") and "/" not in info.relpath
    )


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
            for version in list_versions(store, dataset, kind):
                versions += 1
                for shard_id in _shard_ids(version):
                    shards += 1
                    try:
                        verify_shard(version, shard_id)
                    except Im2SpError as error:
                        url = store.url_of(version.shard_key(shard_id))
                        damaged.append(Damage(dataset, kind, version.version, shard_id, str(error), url))
                        if flag:
                            _flag(version, shard_id, str(error))
    return VerifyReport(versions, shards, tuple(damaged))


def _flag(version: StoreVersion, shard_id: str, reason: str) -> None:
    version.store.write_json(
        version.damaged_key(shard_id),
        {"shard_id": shard_id, "reason": reason, "found_at": datetime.now(UTC).isoformat(timespec="seconds")},
    )
