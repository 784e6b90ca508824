"""tokenize-images: bad input commits with reasons, reruns rebuild nothing, a lost marker rebuilds one shard."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from im2sp_models.image_tokenizers.patch_vq import PatchVQ, PatchVQConfig
from storage.reader import read_units, verify_shard
from storage.store import Store
from storage.versions import StoreVersion
from tasks.image_preview import StoredUnits, check_reconstruction
from tasks.image_units import TokenizeSettings, tokenize_shard
from tasks.jobs import ShardJob
from tasks.models import TokenizerRef


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _bomb_png() -> bytes:
    data = bytearray(_save(Image.new("RGB", (10, 10)), "PNG"))
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def _bad_inputs() -> dict[str, bytes | None]:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    return {
        "ok": _save(photo, "JPEG"),
        "truncated": _save(photo, "JPEG")[:200],
        "zero-byte": b"",
        "text-as-jpg": b"this is a text file, not a JPEG\n",
        "cmyk": _save(photo.convert("CMYK"), "JPEG"),
        "png16": _save(Image.fromarray(rng.integers(0, 65535, (20, 20), dtype=np.uint16)), "PNG"),
        "palette-alpha": _save(palette, "PNG", transparency=0),
        "exif-rotated": _save(photo, "JPEG", exif=exif.tobytes()),
        "one-pixel": _save(Image.new("RGB", (1, 1), "blue"), "PNG"),
        "bomb": _bomb_png(),
        "missing": None,
    }


@pytest.fixture
def codebook(tmp_path: Path) -> Path:
    images = list(np.random.default_rng(1).random((2, 3, 256, 256), dtype=np.float32))
    PatchVQ.train(images, PatchVQConfig(codebook_size=16), seed=0, niter=3).save(tmp_path / "codebook")
    return tmp_path / "codebook"


def _jobs(root: Path, files: dict[str, bytes | None], shard_size: int) -> list[ShardJob]:
    items = []
    for key, data in files.items():
        if data is not None:
            (root / f"{key}.jpg").write_bytes(data)
        items.append((key, f"{key}.jpg", hashlib.sha256(data or b"").hexdigest()))
    return [
        ShardJob("ds", f"train-{i:05d}", f"fp-{i}", tuple(items[start : start + shard_size]))
        for i, start in enumerate(range(0, len(items), shard_size))
    ]


def test_bad_inputs_are_recorded_and_the_shard_commits(tmp_path: Path, codebook: Path, store: Store) -> None:
    root = tmp_path / "images"
    root.mkdir()
    files = _bad_inputs()
    (job,) = _jobs(root, files, 100)
    ref = TokenizerRef("patch-vq", str(codebook), "cpu")
    outcome = tokenize_shard(store, root, job, "v1", ref, TokenizeSettings(batch_size=3, io_workers=2))
    marker = verify_shard(StoreVersion(store, "ds", "image-units", "v1"), job.shard_id)
    reasons = {r.key: r.reason for r in marker.rejected}
    assert set(marker.keys) == {"ok", "cmyk", "png16", "palette-alpha", "exif-rotated", "one-pixel"}
    assert reasons["truncated"].startswith("undecodable image")
    assert reasons["zero-byte"].startswith("empty file")
    assert reasons["text-as-jpg"].startswith("undecodable image")
    assert reasons["bomb"].startswith("image too large")
    assert reasons["missing"].startswith("missing file")
    assert outcome.stored + outcome.rejected == len(files) == marker.input_count
    keys, units = read_units(StoreVersion(store, "ds", "image-units", "v1"), job.shard_id)
    assert set(keys) == set(marker.keys)
    assert units.shape == (6, 32, 32) and units.dtype == np.uint16 and units.max() < 16


def test_changed_file_is_rejected_not_silently_used(tmp_path: Path, codebook: Path, store: Store) -> None:
    root = tmp_path / "images"
    root.mkdir()
    (job,) = _jobs(root, {"a": _bad_inputs()["ok"]}, 10)
    (root / "a.jpg").write_bytes(_bad_inputs()["cmyk"] or b"")
    outcome = tokenize_shard(store, root, job, "v1", TokenizerRef("patch-vq", str(codebook), "cpu"))
    assert outcome.rejected == 1
    assert (
        "changed since manifest"
        in StoreVersion(store, "ds", "image-units", "v1").require_marker(job.shard_id).rejected[0].reason
    )


def test_rerun_skips_and_a_lost_marker_rebuilds_one_identical_shard(
    tmp_path: Path, codebook: Path, store: Store
) -> None:
    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.default_rng(5)
    files: dict[str, bytes | None] = {
        f"img{i}": _save(Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)), "PNG") for i in range(7)
    }
    jobs = _jobs(root, files, 3)
    ref = TokenizerRef("patch-vq", str(codebook), "cpu")
    assert all(tokenize_shard(store, root, job, "v1", ref).built for job in jobs)
    version = StoreVersion(store, "ds", "image-units", "v1")
    data_before = {
        f.relpath: store.read_bytes(f"{version.prefix}/shards/{f.relpath}")
        for f in store.walk_files(f"{version.prefix}/shards")
    }
    assert not any(tokenize_shard(store, root, job, "v1", ref).built for job in jobs)
    store.remove(version.marker_key(jobs[1].shard_id))
    assert [tokenize_shard(store, root, job, "v1", ref).built for job in jobs] == [False, True, False]
    data_after = {
        f.relpath: store.read_bytes(f"{version.prefix}/shards/{f.relpath}")
        for f in store.walk_files(f"{version.prefix}/shards")
    }
    assert data_after == data_before
    units = StoredUnits("ds", "v1", tuple(j.shard_id for j in jobs), {k: f"{k}.jpg" for k in files})
    report = check_reconstruction(store, root, units, ref, sample=4)
    assert report is not None and report.items == 4 and 0 < report.psnr_min <= report.psnr_mean
    assert Image.open(io.BytesIO(store.read_bytes(report.preview_key))).size == (256, 4 * 128)


def test_image_preprocess_official_keeps_exif_as_stored_and_only_it_changes_the_version(
    tmp_path: Path, codebook: Path, store: Store
) -> None:
    from flows.plans import image_units_version_id
    from tests.tiny_datasets import tiny_config

    rotated = {"exif-rotated": _bad_inputs()["exif-rotated"]}
    ref = TokenizerRef("patch-vq", str(codebook), "cpu")
    grids = {}
    for preprocess in ("ours", "official"):
        (job,) = _jobs(tmp_path, rotated, 1)
        tokenize_shard(store, tmp_path, job, preprocess, ref, TokenizeSettings(image_preprocess=preprocess))
        grids[preprocess] = read_units(StoreVersion(store, "ds", "image-units", preprocess), job.shard_id)[1]
    assert not np.array_equal(grids["ours"], grids["official"])  # ours turns the photo upright; theirs does not

    ours, official = (tiny_config(tmp_path, {"image_tokenizer": {"image_preprocess": p}}) for p in ("ours", "official"))
    assert tiny_config(tmp_path).image_tokenizer.image_preprocess == "ours"
    assert image_units_version_id(ours, "f" * 16) == "f" * 16  # every existing store keeps its version id
    assert image_units_version_id(official, "f" * 16) not in ("f" * 16, image_units_version_id(ours, "f" * 16))
