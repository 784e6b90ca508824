"""What the Prefect UI shows: the reconstruction preview inline, the storage table led by readable sizes."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from flows.config import PipelineConfig
from storage.store import Store
from tasks.image_preview import ReconstructionReport

#: The demo's preview: 8 items, each a 128 px row of original | reconstruction.
DEMO_PREVIEW = (256, 8 * 128)
INLINE_IMAGE = re.compile(r"!\[[^\]]*\]\(data:image/(?:jpeg|webp);base64,([A-Za-z0-9+/=]+)\)")


def _capture(monkeypatch: pytest.MonkeyPatch, module: object, *names: str) -> dict[str, list[dict[str, Any]]]:
    """Replace the artifact calls ``names`` of ``module`` with recorders of their keyword arguments."""
    calls: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for name in names:
        monkeypatch.setattr(module, name, lambda _name=name, **kwargs: calls[_name].append(kwargs))
    return calls


def _noisy_preview_png() -> bytes:
    """A preview PNG of the demo's size whose noise keeps it above the old 400 KB inline limit."""
    pixels = np.random.default_rng(0).integers(0, 256, (DEMO_PREVIEW[1], DEMO_PREVIEW[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def test_a_demo_sized_preview_is_inlined_as_a_small_image(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    import flows.tokenize_images as module

    png = _noisy_preview_png()
    assert len(png) > 400_000
    key = "reports/tokenize-images/coco-v1-preview.png"
    store.write_bytes(key, png)
    report = ReconstructionReport("coco", 8, 21.5, 18.25, key)
    result = module.DatasetUnits("coco", "v1", store.url_of("x"), 1, 0, 8, 0, 1, reconstruction=report)
    calls = _capture(monkeypatch, module, "create_table_artifact", "create_markdown_artifact")

    module._artifacts(store, result)

    (call,) = calls["create_markdown_artifact"]
    assert call["key"] == "image-reconstruction-coco"
    markdown = call["markdown"]
    assert len(markdown) < 200_000
    match = INLINE_IMAGE.search(markdown)
    assert match is not None, "the preview is not inlined"
    inline = base64.b64decode(match.group(1))
    assert len(inline) <= 100_000
    with Image.open(io.BytesIO(inline)) as image:
        assert image.width * 4 == image.height  # the grid's shape survives any downscaling
    assert "21.50 dB" in markdown and "18.25 dB" in markdown
    # The full PNG stays in the store, named only after the image (a footnote).
    assert store.read_bytes(key) == png
    assert markdown.index(store.url_of(key)) > match.end()


def test_storage_table_leads_with_readable_sizes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: Store) -> None:
    import flows.report as module

    entry = {
        "dataset": "coco",
        "modality": "image",
        "representation": "units",
        "items": 123,
        "source_bytes": 127_943_360,
        "raw_bits": 123 * 1_572_864,
        "unit_bits": 123 * 13 * 1024,
        "stored_bytes": 1_740_800,
        "path": store.url_of("coco/image-units/v1"),
        "version": "v1",
        "codebook": "cb1",
    }
    document = {
        "entries": [entry],
        "stale_versions": [],
        "reclaimable_bytes": 0,
        "unmeasured": [],
        "created_at": "2026-11-01T00:00:00+00:00",
    }
    config = PipelineConfig.model_validate(
        {"store": {"url": str(tmp_path / "store")}, "datasets": {"coco": {"kind": "coco", "root": str(tmp_path)}}}
    )
    monkeypatch.setattr(module, "storage_report", lambda _config: dict(document))
    monkeypatch.setattr(module, "chart_png", lambda _document: b"png")
    monkeypatch.setattr(module, "get_run_logger", lambda: __import__("logging").getLogger("test"))
    calls = _capture(monkeypatch, module, "create_table_artifact", "create_markdown_artifact")

    returned = module.storage_report_flow.fn(config)

    (call,) = calls["create_table_artifact"]
    assert call["key"] == "storage-report"
    (row,) = call["table"]
    assert list(row)[:6] == ["dataset", "representation", "items", "stored", "raw", "stored/raw"]
    assert row["dataset"] == "coco" and row["items"] == 123
    assert row["representation"] == "image units"
    assert row["stored"] == "1.7 MiB"
    assert row["raw"] == "23.1 MiB"  # 123 images × 192 KiB
    assert row["stored/raw"] == "7.20%"
    assert row["source"] == "122.0 MiB"
    assert not any(isinstance(value, int) and value > 10_000 for value in row.values()), row
    # Exact integers stay in the JSON document.
    assert returned["entries"][0]["stored_bytes"] == 1_740_800
    assert returned["entries"][0]["source_bytes"] == 127_943_360
