"""Bad input: every kind the Foundation issue names, each recorded with a reason, counts adding up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.errors import SourceFormatError, TooManyRejectedError
from storage.manifests import build_manifests, list_source, read_table
from storage.sources.records import OK, SourceListing
from storage.sources.spec import CocoSpec, Flickr8kSpec
from storage.store import Store
from storage.versions import current_version
from tests.tiny_datasets import coco_entry, write_coco, write_flickr, write_image


def _reasons(records: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {r.id: r.reason for r in records if r.status != OK}


def _adds_up(listing: SourceListing) -> None:
    for records in (listing.images, listing.captions, listing.utterances):
        ok = sum(r.status == OK for r in records)
        assert ok + sum(r.status != OK for r in records) == len(records)


def _coco(root: Path, entries: list[dict], **kwargs: bool) -> CocoSpec:  # type: ignore[type-arg]
    write_coco(root, entries, **kwargs)
    return CocoSpec(root=root, max_rejected_fraction=1.0)  # these tests read the per-item reasons


def test_coco_listing_reads_karpathy_and_spoken_coco(tmp_path: Path) -> None:
    spec = _coco(tmp_path, [coco_entry(1, "train", ["A dog. ", "Un café noir."]), coco_entry(2, "test", ["A cat."])])
    listing = list_source("coco", spec)
    assert [(i.id, i.split) for i in listing.images] == [("1", "train"), ("2", "test")]
    assert [c.text for c in listing.captions] == ["A dog.", "Un café noir.", "A cat."]  # stripped, non-ASCII kept
    assert {u.split for u in listing.utterances} == {"train", "test"}
    assert listing.utterances[1].text == "UN CAFÉ NOIR."
    _adds_up(listing)


def test_missing_image_and_wav_are_rejected(tmp_path: Path, store: Store) -> None:
    spec = _coco(tmp_path, [coco_entry(1, "train", ["A dog."]), coco_entry(2, "val", ["A cat."])])
    (tmp_path / "COCO_2014/val2014/COCO_val2014_000000000002.jpg").unlink()
    next((tmp_path / "SpokenCOCO/wavs/train").rglob("*.wav")).unlink()
    result = build_manifests(store, "coco", spec, shard_size=4, workers=1)
    assert result.counts["images"] == {"listed": 2, "ok": 1, "rejected": 1}
    assert result.counts["utterances"] == {"listed": 2, "ok": 1, "rejected": 1}
    assert set(result.reasons) == {"images: missing file", "utterances: missing file"}


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    spec = _coco(tmp_path, [coco_entry(1, "train", ["A dog."]), coco_entry(1, "val", ["Again."])])
    listing = list_source("coco", spec)
    assert listing.images[0].status == OK
    assert _reasons(listing.images) == {"1": "duplicate id: image '1' is listed more than once"}
    _adds_up(listing)


def test_unreadable_json_names_file_and_line(tmp_path: Path) -> None:
    spec = _coco(tmp_path, [coco_entry(1, "train", ["A dog."])])
    (tmp_path / "karpathy/dataset_coco.json").write_text('{"images": [\n  {"filename": "x.jpg",\n  oops}\n]}')
    with pytest.raises(SourceFormatError, match=r"dataset_coco\.json:3:3: invalid JSON"):
        list_source("coco", spec)


def test_malformed_karpathy_entries_are_rejected_by_name(tmp_path: Path) -> None:
    (tmp_path / "karpathy").mkdir()
    entries = [{"filename": "a.jpg"}, {"filename": "b.jpg", "split": "holdout"}, {"split": "train"}, 7]
    (tmp_path / "karpathy/dataset_coco.json").write_text(json.dumps({"images": entries}))
    listing = list_source("coco", CocoSpec(root=tmp_path))
    assert [(i.status, i.reason) for i in listing.images] == [
        ("rejected", "malformed entry: dataset_coco.json: images[0] is missing key(s) ['split']"),
        (
            "rejected",
            "unknown split 'holdout' in dataset_coco.json: images[1] (expected one of train, restval, val, test)",
        ),
        ("rejected", "malformed entry: dataset_coco.json: images[2] has no file name"),
        ("rejected", "malformed entry: dataset_coco.json: images[3] has no file name"),
    ]


def test_oversized_annotation_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "karpathy").mkdir()
    with (tmp_path / "karpathy/dataset_coco.json").open("wb") as stream:
        stream.truncate(1 << 30)  # a sparse 1 GiB file: no disk used, never read
    with pytest.raises(SourceFormatError, match="annotation file too large"):
        list_source("coco", CocoSpec(root=tmp_path))


def test_empty_caption_is_rejected(tmp_path: Path) -> None:
    listing = list_source("coco", _coco(tmp_path, [coco_entry(1, "train", ["  ", "A dog."])]))
    assert [c.reason for c in listing.captions] == ["empty caption: the caption text is blank", ""]
    assert [u.status for u in listing.utterances] == ["rejected", "ok"]


def test_path_traversal_is_rejected(tmp_path: Path, store: Store) -> None:
    outside = tmp_path / "outside.jpg"
    write_image(outside, 0)
    root = tmp_path / "coco"
    entries = [coco_entry(1, "train", ["A dog."]), coco_entry(2, "train", ["A cat."]), coco_entry(3, "val", ["Sky."])]
    spec = _coco(root, entries, speech=False)
    entries[0]["filepath"], entries[0]["filename"] = "../..", "outside.jpg"
    entries[1]["filepath"], entries[1]["filename"] = "", str(outside)
    link = root / "COCO_2014/val2014/COCO_val2014_000000000003.jpg"
    link.unlink()
    link.symlink_to(outside)
    (root / "karpathy/dataset_coco.json").write_text(json.dumps({"images": entries}))
    result = build_manifests(store, "coco", spec, shard_size=4, workers=1)
    images = read_table(current_version(store, "coco", "manifests"), "images").to_pylist()  # type: ignore[arg-type]
    assert [row["status"] for row in images] == ["rejected"] * 3
    assert "leaves the folder it is listed in" in images[0]["reason"]
    assert "absolute" in images[1]["reason"]
    assert "symlink" in images[2]["reason"]
    assert result.counts["images"]["rejected"] == 3


def test_truncated_jpeg_is_rejected(tmp_path: Path, store: Store) -> None:
    spec = _coco(tmp_path, [coco_entry(167126, "train", ["A dog."])], speech=False)
    path = tmp_path / "COCO_2014/train2014/COCO_train2014_000000167126.jpg"
    write_image(path, 1)
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(path, "JPEG")
    path.write_bytes(path.read_bytes()[:300])
    result = build_manifests(store, "coco", spec, shard_size=4, workers=1)
    assert result.reasons == {"images: undecodable image": 1}


def test_flickr_caption_key_without_image_and_wav2capt_mapping(tmp_path: Path) -> None:
    images = {"100_aa.jpg": "train", "200_bb.jpg": "test"}
    tokens = [
        "100_aa.jpg#0\tA dog runs .",
        "200_bb.jpg#0\tA cat sits .",
        "2258277193_586949ec62.jpg.1#0\tGhost .",
        "not a valid line",
    ]
    # The wav's name says image 100, wav2capt.txt says image 200: the mapping file wins.
    wav2capt = ["100_aa_0.wav 200_bb.jpg #0", "100_aa_1.wav 100_aa.jpg #0", "x.wav 100_aa.jpg #7"]
    write_flickr(tmp_path, images, tokens, wav2capt)
    listing = list_source("flickr8k", Flickr8kSpec(root=tmp_path))
    assert [(i.id, i.split) for i in listing.images] == [("100_aa", "train"), ("200_bb", "test")]
    reasons = _reasons(listing.captions)
    assert reasons["2258277193_586949ec62.jpg.1#0"].startswith("caption key without an image")
    assert reasons["Flickr8k.token.txt:4"].startswith("malformed line")
    first = listing.utterances[0]
    assert (first.id, first.image_id, first.text, first.split, first.speaker) == (
        "100_aa_0",
        "200_bb",
        "A cat sits .",
        "test",
        "3",
    )
    assert listing.utterances[2].reason.startswith("caption key without a caption")
    _adds_up(listing)


def test_flickr_kaggle_csv_and_karpathy_splits(tmp_path: Path) -> None:
    write_flickr(tmp_path, {"100_aa.jpg": "train"}, ["100_aa.jpg#0\tA dog ."], [])
    (tmp_path / "Images").mkdir()
    (tmp_path / "captions.txt").write_text('image,caption\n100_aa.jpg,"A dog, running ."\n100_aa.jpg,Second one .\n')
    karpathy = {"images": [{"filename": "100_aa.jpg", "imgid": 0, "split": "val", "sentences": []}]}
    (tmp_path / "dataset_flickr8k.json").write_text(json.dumps(karpathy))
    spec = Flickr8kSpec(
        root=tmp_path,
        images="Flicker8k_Dataset",
        captions_csv="captions.txt",
        karpathy="dataset_flickr8k.json",
        speech=None,
    )
    listing = list_source("flickr8k", spec)
    assert [(c.id, c.text, c.split) for c in listing.captions] == [
        ("100_aa.jpg#0", "A dog, running .", "val"),
        ("100_aa.jpg#1", "Second one .", "val"),
    ]


def test_flickr_audio_in_a_sibling_folder_is_read(tmp_path: Path, store: Store) -> None:
    # The Flickr Audio archive unpacks to flickr_audio/ beside the Flickr8k folders, not inside them.
    root = tmp_path / "Flickr8k"
    write_flickr(root, {"a.jpg": "train", "b.jpg": "test"}, ["a.jpg#0\tA dog.", "b.jpg#0\tA cat."], [])
    audio = tmp_path / "flickr_audio"
    write_flickr(tmp_path / "scratch", {}, [], ["a_0.wav a.jpg #0", "b_0.wav b.jpg #0", "../../c.wav a.jpg #0"])
    (tmp_path / "scratch" / "flickr_audio").rename(audio)
    write_image(tmp_path / "c.wav", 0)  # a good file outside the speech folder: must stay unread
    spec = Flickr8kSpec(root=root, speech="../flickr_audio", max_rejected_fraction=1.0)
    result = build_manifests(store, "flickr8k", spec, shard_size=4, workers=1)
    assert result.counts["utterances"] == {"listed": 3, "ok": 2, "rejected": 1}
    assert result.reasons == {"utterances: unsafe path": 1}


def test_spoken_coco_in_a_sibling_folder_and_a_symlinked_image_folder(tmp_path: Path, store: Store) -> None:
    root = tmp_path / "coco"
    write_coco(root, [coco_entry(1, "train", ["A dog."]), coco_entry(2, "val", ["A cat."])])
    (root / "SpokenCOCO").rename(tmp_path / "SpokenCOCO")
    (root / "COCO_2014").rename(tmp_path / "images-on-another-disk")
    (root / "COCO_2014").symlink_to(tmp_path / "images-on-another-disk")  # a configured folder may be a link
    result = build_manifests(store, "coco", CocoSpec(root=root, speech="../SpokenCOCO"), shard_size=4, workers=1)
    assert result.counts["images"] == {"listed": 2, "ok": 2, "rejected": 0}
    assert result.counts["utterances"] == {"listed": 2, "ok": 2, "rejected": 0}


def test_annotation_file_linked_out_of_its_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_coco(root, [coco_entry(1, "train", ["A dog."])])
    spoken = root / "SpokenCOCO" / "SpokenCOCO_train.json"
    spoken.rename(tmp_path / "elsewhere.json")
    spoken.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(SourceFormatError, match=r"outside the folder.*datasets\.coco\.speech"):
        list_source("coco", CocoSpec(root=root))


@pytest.mark.parametrize(("orientation", "size"), [(1, (16, 8)), (3, (16, 8)), (6, (8, 16)), (8, (8, 16))])
def test_manifest_size_is_the_displayed_size(
    tmp_path: Path, store: Store, orientation: int, size: tuple[int, int]
) -> None:
    from PIL import ExifTags, Image

    spec = _coco(tmp_path, [coco_entry(1, "train", ["A dog."])], speech=False)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation  # 6 and 8: stored sideways, shown upright (phone photos)
    Image.new("RGB", (16, 8), "red").save(tmp_path / "COCO_2014/train2014/COCO_train2014_000000000001.jpg", exif=exif)
    build_manifests(store, "coco", spec, shard_size=4, workers=1)
    images = read_table(current_version(store, "coco", "manifests"), "images").to_pylist()  # type: ignore[arg-type]
    assert (images[0]["width"], images[0]["height"]) == size


def test_a_run_that_rejects_most_items_fails_with_one_line(tmp_path: Path, store: Store) -> None:
    root = tmp_path / "Flickr8k"
    wavs = [f"{name}_{n}.wav {name}.jpg #{n}" for name in ("a", "b") for n in range(3)]
    write_flickr(
        root, {"a.jpg": "train", "b.jpg": "test"}, [f"{w.split()[1]}{w.split()[2]}\tA dog." for w in wavs], wavs
    )
    for wav in (root / "flickr_audio/wavs").glob("*.wav"):
        wav.unlink()  # the speech folder the config names holds no wav: every utterance is rejected
    spec = Flickr8kSpec(root=root)
    with pytest.raises(TooManyRejectedError) as raised:
        build_manifests(store, "flickr8k", spec, shard_size=4, workers=1)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("flickr8k: 6 of 6 utterances rejected")
    assert "most common: missing file (6), e.g. 'a_0': missing file: flickr_audio/wavs/a_0.wav" in message
    assert "check datasets.flickr8k.speech" in message
    assert current_version(store, "flickr8k", "manifests") is None  # nothing made current
    with pytest.raises(TooManyRejectedError):  # the committed manifests are checked again, not published
        build_manifests(store, "flickr8k", spec, shard_size=4, workers=1)
    allowed = Flickr8kSpec(root=root, max_rejected_fraction=1.0)
    result = build_manifests(store, "flickr8k", allowed, shard_size=4, workers=1)
    assert result.skipped and result.counts["utterances"] == {"listed": 6, "ok": 0, "rejected": 6}
    assert current_version(store, "flickr8k", "manifests") is not None


def test_a_speech_folder_without_spoken_coco_lists_is_a_wrong_folder(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_coco(root, [coco_entry(1, "train", ["A dog."])], speech=False)
    (root / "wavs").mkdir()
    with pytest.raises(SourceFormatError, match=r"no SpokenCOCO_train\.json.*datasets\.coco\.speech"):
        list_source("coco", CocoSpec(root=root, speech="wavs"))
    assert list_source("coco", CocoSpec(root=root, speech="absent")).utterances == []  # no folder: no speech
