"""The scale benchmark's own parts: the synthetic datasets list as their real layouts do, the clock adds up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.bench_scale import WorkClock, pipeline_config
from benchmarks.scale_data import counts, write_datasets
from flows.config import parse_config
from storage.manifests import list_source


def test_synthetic_datasets_list_at_the_counts_asked_for(tmp_path: Path) -> None:
    sizes = write_datasets(tmp_path / "data", 0.0004)
    assert sizes == counts(0.0004)
    config = parse_config(pipeline_config(tmp_path), base=tmp_path)
    coco = list_source("coco", config.datasets["coco"])
    flickr = list_source("flickr8k", config.datasets["flickr8k"])
    assert (len(coco.images), len(coco.utterances)) == (sizes["coco_images"], sizes["coco_utterances"])
    assert (len(flickr.images), len(flickr.utterances)) == (sizes["flickr_images"], sizes["flickr_utterances"])
    for listing in (coco, flickr):
        assert all(r.status == "ok" for r in listing.images) and all(r.status == "ok" for r in listing.utterances)
    assert {r.split for r in coco.images} == {"train", "restval", "val", "test"}
    assert sizes["coco_utterances"] > 5 * sizes["coco_images"]  # SpokenCOCO has images with 6 spoken captions


def test_work_clock_counts_overlapping_work_once() -> None:
    clock = WorkClock()
    clock.intervals = [(0.0, 2.0), (1.0, 3.0), (2.5, 2.7), (5.0, 6.0)]
    assert clock.covered() == 4.0
    assert clock.wrap(lambda x: x + 1)(1) == 2 and len(clock.intervals) == 5


def test_a_step_process_reports_its_own_peak_memory_not_its_parents() -> None:
    held = b"\x01" * (600 * 2**20)  # the parent's peak, touched
    child = "from benchmarks.bench_scale import peak_rss_mib; grown = b'\\x01' * (200 * 2**20); print(peak_rss_mib())"
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    peak = float(done.stdout.strip())
    assert 200 <= peak < 600, peak
    assert len(held) == 600 * 2**20
