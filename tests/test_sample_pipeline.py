"""The sample data in its real layouts, manifests built from it, the CLI and the flows on top."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import soundfile
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app
from flows.config import load_config
from storage.manifests import build_manifests
from storage.store import Store
from storage.versions import current_version


def _private_config(sample_dir: Path, tmp_path: Path) -> Path:
    """The sample's pipeline.yaml with absolute dataset roots and a store of the test's own."""
    config = tmp_path / "pipeline.yaml"
    text = (sample_dir / "pipeline.yaml").read_text()
    config.write_text(
        text.replace("root: coco", f"root: {sample_dir}/coco").replace("root: flickr8k", f"root: {sample_dir}/flickr8k")
    )
    return config


def test_sample_layouts_are_the_real_ones(sample_dir: Path) -> None:
    coco, flickr = sample_dir / "coco", sample_dir / "flickr8k"
    karpathy = json.loads((coco / "karpathy/dataset_coco.json").read_text())
    entry = karpathy["images"][0]
    assert {"filepath", "filename", "imgid", "split", "sentences", "sentids", "cocoid"} <= set(entry)
    assert (coco / "COCO_2014" / entry["filepath"] / entry["filename"]).exists()
    assert {e["split"] for e in karpathy["images"]} == {"train", "restval", "val", "test"}
    assert len({e["cocoid"] for e in karpathy["images"]}) >= 24
    assert {len(e["sentences"]) for e in karpathy["images"]} >= {4, 5, 6, 7}
    annotations = json.loads((coco / "COCO_2014/annotations/captions_val2014.json").read_text())
    assert {"image_id", "id", "caption"} <= set(annotations["annotations"][0])
    spoken = json.loads((coco / "SpokenCOCO/SpokenCOCO_train.json").read_text())["data"][0]
    caption = spoken["captions"][0]
    assert caption["text"] == caption["text"].upper()
    info = soundfile.info(coco / "SpokenCOCO" / caption["wav"])
    assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16") and info.duration > 1.0
    token_lines = (flickr / "Flickr8k_text/Flickr8k.token.txt").read_text().splitlines()
    assert "\t" in token_lines[0] and "#0" in token_lines[0].split("\t")[0]
    wav, image, number = (flickr / "flickr_audio/wav2capt.txt").read_text().split("\n")[0].split()
    assert (flickr / "flickr_audio/wavs" / wav).exists() and (flickr / "Flicker8k_Dataset" / image).exists()
    assert number.startswith("#")
    modes = {Image.open(p).mode for p in (coco / "COCO_2014").rglob("*.jpg") if "167126" not in p.name}
    assert modes == {"RGB", "L"}
    rotated = [p for p in (coco / "COCO_2014").rglob("*.jpg") if Image.open(p).getexif().get(0x0112) == 6]
    assert len(rotated) == 1
    assert "Licence" in (sample_dir / "README.md").read_text()


def test_manifests_from_sample_load_in_pandas_and_duckdb(sample_dir: Path, tmp_path: Path) -> None:
    config = load_config(sample_dir / "pipeline.yaml")
    store = Store(str(tmp_path / "store"))
    for name, spec in config.datasets.items():
        first = build_manifests(store, name, spec, shard_size=8, workers=2)
        assert not first.skipped
        for counts in first.counts.values():
            assert counts["listed"] == counts["ok"] + counts["rejected"]
        assert build_manifests(store, name, spec, shard_size=8, workers=2).skipped
    coco = current_version(store, "coco", "manifests")
    assert coco is not None
    folder = Path(store.path(coco.shard_key("all")))
    images = pd.read_parquet(folder / "images.parquet")
    assert images.loc[images.status == "rejected", "reason"].str.startswith("undecodable image").all()
    assert images.loc[images.status == "ok", "shard"].notna().all()
    rows = duckdb.sql(f"select split, count(*) from '{folder}/utterances.parquet' where status = 'ok' group by split")
    assert rows is not None
    assert dict(rows.fetchall()).keys() == {"train", "restval", "val", "test"}
    shards = pd.read_parquet(folder / "shards.parquet")
    assert shards["items"].map(len).max() <= 8


def test_cli_sample_data_run_and_report(sample_dir: Path, tmp_path: Path, prefect_harness: None) -> None:
    config = _private_config(sample_dir, tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["run", "build-manifests", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert "built" in first.output and "undecodable image" in first.output
    second = runner.invoke(app, ["run", "build-manifests", "--config", str(config)])
    assert second.exit_code == 0 and "up to date" in second.output
    report = runner.invoke(app, ["report", "storage", "--config", str(config), "--json"])
    assert report.exit_code == 0, report.output
    document = json.loads(report.output)
    assert document["format_version"] == 3
    entries = {(e["dataset"], e["modality"]): e for e in document["entries"]}
    assert set(entries) == {("coco", "image"), ("coco", "speech"), ("flickr8k", "image"), ("flickr8k", "speech")}
    coco_image = entries[("coco", "image")]
    assert coco_image["items"] == 26 and coco_image["raw_bits"] == 26 * 256 * 256 * 3 * 8
    assert coco_image["unit_bits"] is None and coco_image["stored_bytes"] == coco_image["source_bytes"] > 0
    speech = entries[("coco", "speech")]
    assert speech["raw_bits"] == pytest.approx(speech["stored_bytes"] * 8, rel=0.01)  # 16-bit PCM wavs


def test_cli_reports_bad_config_and_unknown_flow(tmp_path: Path) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text("datasets: {coco: {kind: coco}}\n")
    result = CliRunner().invoke(app, ["run", "build-manifests", "--config", str(config)])
    assert result.exit_code == 2 and "root: Field required" in result.output
    config.write_text("datasets: {coco: {kind: coco, root: x}}\n")
    result = CliRunner().invoke(app, ["run", "no-such-flow", "--config", str(config)])
    assert result.exit_code == 2 and "known flows" in result.output


def test_pipeline_tokenizes_sample_images_compactly(sample_dir: Path, tmp_path: Path, prefect_harness: None) -> None:
    from flows.cli import run_flow

    config = _private_config(sample_dir, tmp_path)
    results = run_flow("im2sp-pipeline", config)
    assert isinstance(results, dict)
    units = {r.dataset: r for r in results["tokenize-images"]}
    assert units["coco"].stored == 26 and units["coco"].shards_built == 4
    assert units["coco"].reconstruction is not None and units["coco"].reconstruction.psnr_mean > 15
    again = run_flow("tokenize-images", config)
    assert isinstance(again, list) and all(r.shards_built == 0 and r.shards_skipped > 0 for r in again)
    report = CliRunner().invoke(app, ["report", "storage", "--config", str(config), "--json"])
    all_entries = json.loads(report.output)["entries"]
    speech = [e for e in all_entries if e["representation"] == "units" and e["modality"] == "speech"]
    assert {e["dataset"]: e["items"] for e in speech} == {"coco": 135, "flickr8k": 135}
    assert all(0 < e["stored_bytes"] * 8 < 0.02 * e["raw_bits"] for e in speech)
    # Every store has its entry: features, training shards, the shared codebooks and the training run.
    kinds = {(e["dataset"], e["representation"]): e for e in all_entries}
    for dataset in ("coco", "flickr8k"):
        features, training = kinds[dataset, "features"], kinds[dataset, "training-shards"]
        assert features["items"] == training["items"] == 135 and features["stored_bytes"] > 0
        # The same utterances' PCM (each entry rounds its own sum), plus each of their images once as 256×256 RGB.
        images = round((training["raw_bits"] - features["raw_bits"]) / (256 * 256 * 3 * 8))
        assert 0 < images <= 26, (dataset, training, features)
        assert abs(training["raw_bits"] - features["raw_bits"] - images * 256 * 256 * 3 * 8) <= 1
    shared = {(e["modality"], e["representation"]): e for e in all_entries if e["dataset"] == "_shared"}
    assert shared["image", "codebook"]["items"] == 512 and shared["speech", "codebook"]["stored_bytes"] > 0
    assert shared["model", "checkpoints"]["items"] >= 1
    entries = [e for e in all_entries if e["representation"] == "units" and e["modality"] == "image"]
    assert {e["dataset"] for e in entries} == {"coco", "flickr8k"}
    for entry in entries:
        assert entry["unit_bits"] == entry["items"] * 1024 * 9  # K = 512
        assert entry["stored_bytes"] * 8 <= 0.008 * entry["raw_bits"]  # ≤ 0.80 % of raw 256×256 RGB bits
