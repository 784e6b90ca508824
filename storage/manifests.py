"""Manifests: one Parquet table per kind of item, with status and reason for every listed item.

A manifest version is named by the fingerprint of its sources (annotation files' hashes and the size and
mtime of every listed media file) plus the shard size, so rebuilding unchanged sources is a no-op.
Tables: ``images``, ``captions``, ``utterances`` and ``shards`` (the shard plan), stored through the
writer contract as the single shard ``all`` of ``<dataset>/manifests/<fingerprint>/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.errors import CorruptShardError, Im2SpError
from storage.hashing import fingerprint, fingerprint_rows, sha256_bytes, sha256_file
from storage.keyed_cache import KeyedCache
from storage.kinds import MANIFESTS
from storage.locks import shard_lock
from storage.parquet_writer import ParquetTablesWriter
from storage.probe import probe_all, probe_image, probe_utterance
from storage.progress import sink
from storage.rejection_limit import check_rejections
from storage.shard_plan import PlanItem, PlannedShard, plan_shards
from storage.sources.records import OK, ImageRecord, SourceListing, UtteranceRecord
from storage.sources.registry import source_of
from storage.sources.source import SourceSpec
from storage.store import Store
from storage.versions import StoreVersion, current_version

KIND = MANIFESTS
SHARD = "all"
_SCHEMAS = {
    "images": pa.schema(
        [
            ("id", pa.string()),
            ("split", pa.string()),
            ("path", pa.string()),
            ("status", pa.string()),
            ("reason", pa.string()),
            ("bytes", pa.int64()),
            ("sha256", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("shard", pa.string()),
        ]
    ),
    "captions": pa.schema(
        [
            ("id", pa.string()),
            ("image_id", pa.string()),
            ("split", pa.string()),
            ("text", pa.string()),
            ("status", pa.string()),
            ("reason", pa.string()),
        ]
    ),
    "utterances": pa.schema(
        [
            ("id", pa.string()),
            ("image_id", pa.string()),
            ("split", pa.string()),
            ("path", pa.string()),
            ("text", pa.string()),
            ("speaker", pa.string()),
            ("status", pa.string()),
            ("reason", pa.string()),
            ("bytes", pa.int64()),
            ("sha256", pa.string()),
            ("duration", pa.float64()),
            ("sample_rate", pa.int32()),
            ("shard", pa.string()),
        ]
    ),
    "shards": pa.schema(
        [
            ("modality", pa.string()),
            ("shard_id", pa.string()),
            ("split", pa.string()),
            ("items", pa.list_(pa.string())),
            ("fingerprint", pa.string()),
        ]
    ),
}

#: Layout of the manifest tables and their plan, part of the manifests' version name (and recorded as
#: ``produced_by.layout``). Bumped when the tables or the plan change, not with ``FORMAT_VERSION`` alone (format 2
#: changed only how markers hold keys). Layout 1: speech planned by utterance id. Layout 2 (format 3): speech
#: planned by image, every utterance of an image in one speech shard.
MANIFEST_LAYOUT = 2
#: ``sharding.speech_plan`` → the layout it builds.
SPEECH_PLANS = {"by-id": 1, "by-image": 2}


def manifest_layout(store: Store, name: str, speech_plan: str | None) -> int:
    """The layout a build-manifests run uses: the one asked for, else the current manifests' (none: the newest).

    A store whose manifests were built with an older layout keeps it, so an upgrade rebuilds nothing; setting
    ``sharding.speech_plan`` replans (and every shard of the new plan is then built once).
    """
    if speech_plan is not None:
        return SPEECH_PLANS[speech_plan]
    current = current_version(store, name, KIND, damaged_as_missing=True)
    if current is None:
        return MANIFEST_LAYOUT
    try:
        return int(current.info()["produced_by"].get("layout", 1))
    except Im2SpError:
        return MANIFEST_LAYOUT  # unreadable version.json: built again below, with the newest layout


@dataclass(frozen=True)
class ManifestResult:
    """What a manifest build did: a small reference, safe to pass between tasks."""

    dataset: str
    version: str
    url: str
    skipped: bool
    counts: dict[str, dict[str, int]]
    reasons: dict[str, int]


def list_source(name: str, spec: SourceSpec) -> SourceListing:
    """List a dataset with the listing function of its kind (``storage/sources/registry.py``)."""
    return source_of(spec).listing(name, spec)


def source_fingerprint(listing: SourceListing, root: Path, shard_size: int, layout: int = MANIFEST_LAYOUT) -> str:
    """Hash what a manifest is built from, cheaply: annotation file hashes + stat of each listed file."""

    def stat(relpath: str) -> tuple[str, int, int]:
        # ValueError: a NUL byte in a listed path; that item is rejected by the probe, the build goes on
        try:
            info = (root / relpath).stat()
        except (OSError, ValueError):
            return (relpath, -1, -1)
        return (relpath, info.st_size, info.st_mtime_ns)

    paths = [r.path for r in listing.images] + [r.path for r in listing.utterances]
    media = fingerprint_rows(stat(path) for path in paths)
    inputs = {name: sha256_file(root / name) for name in listing.inputs if _is_file(root / name)}
    return fingerprint(
        {
            "format": layout,
            "shard_size": shard_size,
            "inputs": inputs,
            "media": media,
            "root": str(root.resolve()),
        }
    )


def _is_file(path: Path) -> bool:
    """``Path.is_file`` that says False, not raises, for a name too long or holding a NUL byte."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def build_manifests(
    store: Store,
    name: str,
    spec: SourceSpec,
    *,
    shard_size: int,
    workers: int = 4,
    speech_plan: str | None = None,
) -> ManifestResult:
    """Build (or find up to date) a dataset's manifests and shard plan, and publish them as ``current``.

    Args:
        store: The store root.
        name: Dataset name.
        spec: Where the dataset lives.
        shard_size: Items per pipeline shard.
        workers: Threads that hash and decode media files.
        speech_plan: ``by-image`` or ``by-id``; None: as the current manifests are (``by-image`` for new ones).

    Raises:
        SourceFormatError: If an annotation file cannot be parsed.
    """
    listing = list_source(name, spec)
    layout = manifest_layout(store, name, speech_plan)
    version = StoreVersion(store, name, KIND, source_fingerprint(listing, spec.root, shard_size, layout))
    with shard_lock(store, version.lock_key(SHARD)):  # a concurrent run waits, then finds them built
        return _build_locked(name, spec, listing, version, shard_size, workers, layout)


def _build_locked(
    name: str,
    spec: SourceSpec,
    listing: SourceListing,
    version: StoreVersion,
    shard_size: int,
    workers: int,
    layout: int,
) -> ManifestResult:
    produced_by = {"dataset": name, "spec": spec.model_dump(mode="json"), "shard_size": shard_size, "layout": layout}
    version.ensure_created(produced_by)
    if not version.needs_build(SHARD, version.version):
        # Committed for exactly these files (the version is their stat fingerprint), not flagged damaged: nothing to
        # probe again. A pointer that names another version, or is damaged, is only rewritten.
        current = current_version(version.store, name, KIND, damaged_as_missing=True)
        if current is None or current.version != version.version:
            _check_rejections(version, spec)
            version.publish([SHARD])
        return _result(version, skipped=True)
    progress = sink()
    progress.start(f"{name}: checking media files", len(listing.images) + len(listing.utterances))
    probe_all(spec.root, listing.images, probe_image, workers=workers, on_done=progress.advance)
    probe_all(spec.root, listing.utterances, probe_utterance, workers=workers, on_done=progress.advance)
    progress.finish()
    plan = _plan(listing, shard_size, layout)
    with ParquetTablesWriter(version, SHARD, input_fingerprint=version.version) as writer:
        for table_name, table in _tables(listing, plan):
            writer.write(table_name, {"table": table})
    _check_rejections(version, spec)  # committed (its reasons can be read), but never made current
    version.publish([SHARD])
    return _result(version, skipped=False)


def _check_rejections(version: StoreVersion, spec: SourceSpec) -> None:
    tables = {name: read_table(version, name) for name in ("images", "captions", "utterances")}
    check_rejections(version.dataset, source_of(spec).config_keys, tables, spec.max_rejected_fraction)


def _plan(listing: SourceListing, shard_size: int, layout: int) -> list[PlannedShard]:
    images = [PlanItem(r.id, r.split, r.sha256 or "") for r in listing.images if r.status == OK]
    speech = [PlanItem(r.id, r.split, r.sha256 or "", r.image_id) for r in listing.utterances if r.status == OK]
    by_image = layout >= 2
    return plan_shards("image", images, shard_size) + plan_shards("speech", speech, shard_size, by_group=by_image)


def _tables(listing: SourceListing, plan: list[PlannedShard]) -> Iterator[tuple[str, pa.Table]]:
    """The four manifest tables, built one at a time, column by column (no per-row dicts: 1.3 M rows at COCO's size)."""
    shard_of = {(s.modality, item): s.shard_id for s in plan for item in s.items}

    def shards(records: list[ImageRecord] | list[UtteranceRecord], modality: str) -> list[str | None]:
        return [shard_of.get((modality, r.id)) for r in records]

    yield "images", _columns(listing.images, "images", {"shard": shards(listing.images, "image")})
    yield "captions", _columns(listing.captions, "captions", {})
    yield "utterances", _columns(listing.utterances, "utterances", {"shard": shards(listing.utterances, "speech")})
    yield "shards", _columns(plan, "shards", {})


def _columns(records: Sequence[object], table: str, given: dict[str, list[Any]]) -> pa.Table:
    """A manifest table from the records' attributes (or a ``given`` column) named by its schema."""
    schema = _SCHEMAS[table]
    arrays = [
        pa.array(given[f.name] if f.name in given else [getattr(r, f.name) for r in records], type=f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def planned_shards(version: StoreVersion, modality: str) -> list[PlannedShard]:
    """Return a manifest's shard plan for one modality (``image`` or ``speech``), in shard-id order."""
    rows = read_table(version, "shards").to_pylist()
    return [
        PlannedShard(r["modality"], r["shard_id"], r["split"], tuple(r["items"]), r["fingerprint"])
        for r in rows
        if r["modality"] == modality
    ]


def ok_rows(version: StoreVersion, table: str, columns: list[str]) -> dict[str, dict[str, Any]]:
    """Return the chosen columns of a manifest table's ok rows, by item id."""
    rows = read_table(version, table, ["id", "status", *columns]).to_pylist()
    return {row["id"]: row for row in rows if row["status"] == OK}


def ok_media(version: StoreVersion, table: str) -> dict[str, tuple[str, str]]:
    """Path and sha256 of every ok item of a media table (``images``, ``utterances``), by id.

    Built from the Arrow columns, with no dict per row: at SpokenCOCO's 617 k utterances a dict per row costs
    about 1 GB, these tuples about a fifth of that.
    """
    data = read_table(version, table, ["id", "status", "path", "sha256"])
    data = data.filter(pc.equal(data["status"], OK))
    pairs = zip(data["path"].to_pylist(), data["sha256"].to_pylist(), strict=True)
    return dict(zip(data["id"].to_pylist(), pairs, strict=True))


def ok_rows_for(version: StoreVersion, table: str, columns: list[str], ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The chosen columns of a manifest table's ok rows whose id is in ``ids`` (one shard's worth), by id.

    A shard task needs a thousand rows of a table that holds 600,000 at COCO's size: the table is read and
    checked once per process (:func:`shared_table`) and filtered in Arrow, so each shard costs a scan in C,
    not a Python dict per row of the whole dataset.
    """
    data = shared_table(version, table)
    wanted = pc.is_in(data["id"], value_set=pa.array(sorted(set(ids)), pa.string()))
    chosen = data.filter(pc.and_(wanted, pc.equal(data["status"], OK))).select(["id", *columns])
    return {row["id"]: row for row in chosen.to_pylist()}


def image_shards_by_speech_shard(version: StoreVersion) -> dict[str, tuple[str, ...]]:
    """The image shards holding the images of each speech shard's ok utterances (ok images only), sorted.

    What build-training-shards reads for one speech shard: the lineage it checks and fingerprints. One Arrow join,
    not a dict per row (617 k utterances at COCO's size).
    """
    utterances = shared_table(version, "utterances")
    utterances = utterances.filter(pc.equal(utterances["status"], OK)).select(["image_id", "shard"])
    images = shared_table(version, "images")
    images = images.filter(pc.equal(images["status"], OK)).select(["id", "shard"])
    images = images.rename_columns(["image_id", "image_shard"])
    pairs = utterances.join(images, "image_id", join_type="inner").group_by(["shard", "image_shard"]).aggregate([])
    found: dict[str, list[str]] = {}
    for speech, image in zip(pairs["shard"].to_pylist(), pairs["image_shard"].to_pylist(), strict=True):
        if speech is not None and image is not None:
            found.setdefault(speech, []).append(image)
    return {speech: tuple(sorted(images)) for speech, images in found.items()}


#: Manifest tables read by this process (the 4 most recent): manifest versions never change once committed.
_TABLES: KeyedCache[tuple[str, str, str], pa.Table] = KeyedCache(4)


def shared_table(version: StoreVersion, table: str) -> pa.Table:
    """:func:`read_table`, kept for the process's later shards (the 4 most recent tables)."""
    key = (version.store.url_of(version.prefix), table, version.version)
    return _TABLES.get(key, lambda: read_table(version, table))


def read_table(version: StoreVersion, table: str, columns: list[str] | None = None) -> pa.Table:
    """Read one manifest table (or some of its ``columns``) of a committed manifest version, checked against its marker.

    Raises:
        NotCommittedError: If the manifests are not committed.
        CorruptShardError: If the table is missing or its bytes differ from what the marker recorded.
    """
    marker = version.require_marker(SHARD)
    name = f"{table}.parquet"
    key = f"{version.shard_key(SHARD)}/{name}"
    expected = marker.files.get(name)
    try:
        data = version.store.read_bytes(key)
    except FileNotFoundError:
        data = None
    if expected is None or data is None or len(data) != expected.bytes or sha256_bytes(data) != expected.sha256:
        raise CorruptShardError(
            f"{version.store.url_of(key)}: missing or does not match its commit marker; rerun build-manifests "
            "(after `im2sp verify`, which flags it)"
        )
    return pq.read_table(pa.BufferReader(data), columns=columns)


def _result(version: StoreVersion, *, skipped: bool) -> ManifestResult:
    counts: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = {}
    for table in ("images", "captions", "utterances"):
        columns = read_table(version, table).select(["status", "reason"]).to_pylist()
        ok = sum(1 for row in columns if row["status"] == OK)
        counts[table] = {"listed": len(columns), "ok": ok, "rejected": len(columns) - ok}
        for row in columns:
            if row["status"] != OK:
                reason = row["reason"].split(":")[0]
                reasons[f"{table}: {reason}"] = reasons.get(f"{table}: {reason}", 0) + 1
    return ManifestResult(
        dataset=version.dataset,
        version=version.version,
        url=version.url,
        skipped=skipped,
        counts=counts,
        reasons=reasons,
    )
