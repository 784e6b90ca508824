"""Learned unit vocoders in the store: ``_shared/vocoders/<version>/``, one ``current`` pointer per speech codebook.

A vocoder version is named by the fingerprint of the vocoder kind and settings, the speech codebook id and the
speech-units versions it learned from (``flows/train_vocoder.py``). Its training checkpoints are shards
``step-<N>`` (the newest two kept); the finished vocoder is shard ``all``: the files its registry entry loads
(``config.json`` and the weights). ``_shared/vocoders/current-<codebook id>.json`` names the version to use for
that codebook, switched atomically once ``all`` is committed (docs/FORMAT.md §8).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from storage.errors import DamagedPointerError
from storage.format import FORMAT_VERSION
from storage.kinds import SHARED, VOCODERS
from storage.store import Store
from storage.versions import StoreVersion, read_control

#: The shard holding a finished vocoder's files.
FINISHED = "all"
_POINTER = re.compile(r"^current-([A-Za-z0-9][A-Za-z0-9_.\-]*)\.json$")


def pointer_key(codebook_id: str) -> str:
    """Store key of the pointer naming the vocoder of one speech codebook."""
    return f"{SHARED}/{VOCODERS}/current-{codebook_id}.json"


def pointed_codebooks(store: Store) -> list[str]:
    """The speech codebook ids that have a vocoder pointer, sorted."""
    found = []
    for name in store.list_files(f"{SHARED}/{VOCODERS}"):
        match = _POINTER.match(name)
        if match:
            found.append(match.group(1))
    return sorted(found)


def _pointer(store: Store, codebook_id: str) -> dict[str, Any] | None:
    key = pointer_key(codebook_id)
    return read_control(store, key, VOCODERS) if store.exists(key) else None


def current_vocoder(store: Store, codebook_id: str) -> StoreVersion | None:
    """The vocoder version the codebook's pointer names (its ``all`` shard committed), or None when none was published.

    Raises:
        DamagedPointerError: The pointer cannot be read, or names a version without a finished vocoder.
    """
    pointer = _pointer(store, codebook_id)
    if pointer is None:
        return None
    name = pointer.get("version")
    try:
        version = StoreVersion(store, SHARED, VOCODERS, str(name))
    except ValueError:
        version = None
    if version is None or not isinstance(name, str) or version.marker(FINISHED) is None:
        raise DamagedPointerError(
            f"{store.url_of(pointer_key(codebook_id))} names {name!r}, which has no finished vocoder; "
            "rerun train-vocoder to rewrite it"
        )
    return version


def publish_vocoder(version: StoreVersion, codebook_id: str) -> bool:
    """Point the codebook's vocoder pointer at ``version`` (its ``all`` shard must be committed); False: it already was.

    Raises:
        NotCommittedError: The version has no finished vocoder.
    """
    version.require_marker(FINISHED)
    try:
        pointer = _pointer(version.store, codebook_id)
    except DamagedPointerError:
        pointer = None  # rewritten below
    if pointer is not None and pointer.get("version") == version.version:
        return False  # already names it: a rerun writes nothing
    document = {
        "format_version": FORMAT_VERSION,
        "version": version.version,
        "codebook": codebook_id,
        "switched_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    version.store.write_json(pointer_key(codebook_id), document)
    return True
