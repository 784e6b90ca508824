"""Speech planned by image (format 3): an image's utterances share a speech shard; older stores keep their plan."""

from __future__ import annotations

import json
from pathlib import Path

from storage.kinds import MANIFESTS
from storage.manifests import build_manifests, image_shards_by_speech_shard, read_table
from storage.store import Store
from storage.versions import current_version
from tests.tiny_datasets import coco_entry, tiny_config, write_coco

#: Five images, two or three spoken captions each: utterance ids interleave images when sorted by id.
ENTRIES = [coco_entry(n, "train", [f"Caption {n}.", f"Another {n}.", f"Third {n}."][: 2 + n % 2]) for n in range(1, 6)]


def _speech_shards(store: Store) -> dict[str, list[str]]:
    version = current_version(store, "coco", MANIFESTS)
    assert version is not None
    rows = read_table(version, "utterances").to_pylist()
    shards: dict[str, list[str]] = {}
    for row in rows:
        shards.setdefault(row["shard"], []).append(row["image_id"])
    return shards


def test_new_manifests_plan_speech_by_image_and_old_ones_keep_their_plan(tmp_path: Path) -> None:
    write_coco(tmp_path / "coco", ENTRIES)
    spec = tiny_config(tmp_path).datasets["coco"]

    fresh = Store(str(tmp_path / "fresh"))
    build_manifests(fresh, "coco", spec, shard_size=4, workers=1)
    by_image = _speech_shards(fresh)
    for images in by_image.values():  # whole images per shard: none of them is in another shard
        assert all(image not in other for other in by_image.values() if other is not images for image in images)
    version = current_version(fresh, "coco", MANIFESTS)
    assert version is not None and version.info()["produced_by"]["layout"] == 2
    assert all(len(shards) <= 2 for shards in image_shards_by_speech_shard(version).values())

    old = Store(str(tmp_path / "old"))  # as format 2 wrote it: speech by utterance id, no layout recorded
    build_manifests(old, "coco", spec, shard_size=4, workers=1, speech_plan="by-id")
    before = current_version(old, "coco", MANIFESTS)
    assert before is not None
    info = Path(old.path(f"{before.prefix}/version.json"))
    document = json.loads(info.read_text())
    del document["produced_by"]["layout"]
    info.write_text(json.dumps({**document, "format_version": 2}))
    by_id = _speech_shards(old)
    assert any(set(a) & set(b) for a in by_id.values() for b in by_id.values() if a is not b)  # images split
    files = sorted(p for p in Path(old.path("")).rglob("*") if p.is_file())
    stamps = [(p, p.stat().st_mtime_ns) for p in files]

    again = build_manifests(old, "coco", spec, shard_size=4, workers=1)  # the upgrade: nothing is rebuilt
    assert again.skipped and again.version == before.version
    assert [
        (p, p.stat().st_mtime_ns) for p in sorted(p for p in Path(old.path("")).rglob("*") if p.is_file())
    ] == stamps

    replanned = build_manifests(old, "coco", spec, shard_size=4, workers=1, speech_plan="by-image")
    assert not replanned.skipped and replanned.version != before.version
    assert _speech_shards(old) == by_image
