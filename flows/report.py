"""The storage report: entries per dataset and representation, stale versions, and the storage-report flow.

Every run of the flow keeps its JSON document (and chart) under ``reports/storage/`` in the store, so size
over time can be read back; the markdown artifact shows the trend of the last reports. A run that measures
exactly what the newest kept report did keeps nothing new (``storage/kept_reports.py``).
"""

from __future__ import annotations

import base64
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.config import PipelineConfig
from flows.console import human_bytes
from storage.kept_reports import repeats_newest
from storage.report import (
    StaleVersion,
    StorageEntry,
    Unmeasured,
    dataset_entries,
    report_json,
    shared_entries,
    stale_entries,
)
from storage.sources.registry import source_of
from storage.store import Store

#: Where each report is kept in the store (``<UTC time>.json`` and ``.png``).
REPORTS = "reports/storage"
TREND_ROWS = 10


@dataclass(frozen=True)
class Measurement:
    """The stores as they are now: entries, stale versions, and the stores that could not be read."""

    entries: list[StorageEntry]
    stale: list[StaleVersion]
    unmeasured: list[Unmeasured]

    def document(self) -> dict[str, Any]:
        """The report document (JSON contract)."""
        return report_json(self.entries, self.stale, self.unmeasured)


def measure_storage(config: PipelineConfig) -> Measurement:
    """Measure every configured dataset's stores and the shared codebooks; damaged stores are listed, not fatal."""
    store = config.store.open()
    entries: list[StorageEntry] = []
    unmeasured: list[Unmeasured] = []
    for name, spec in config.datasets.items():
        found, problems = dataset_entries(store, name, source_of(spec).media_roots(spec))
        entries.extend(found)
        unmeasured.extend(problems)
    found, problems = shared_entries(store)
    entries.extend(found)
    unmeasured.extend(problems)
    stale, problems = stale_entries(store, list(config.datasets))
    listed = {(u.dataset, u.kind) for u in unmeasured}
    unmeasured.extend(u for u in problems if (u.dataset, u.kind) not in listed)  # one line per damaged store
    return Measurement(entries, stale, unmeasured)


def storage_report(config: PipelineConfig) -> dict[str, Any]:
    """The report document (JSON contract) of the stores as they are now."""
    document = measure_storage(config).document()
    document["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return document


def chart_png(document: dict[str, Any]) -> bytes:
    """A horizontal bar chart (log scale) of bytes per dataset and representation, plus reclaimable bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    for entry in document["entries"]:
        label = f"{entry['dataset']} {entry['modality']} {entry['representation']}"
        if entry["representation"] == "checkpoints":  # one entry per training run: each its own bar
            label += f" {entry['version']}"
        labels.append(label)
        values.append(max(1, entry["stored_bytes"]))
    if document["reclaimable_bytes"]:
        labels.append("stale versions (reclaimable)")
        values.append(document["reclaimable_bytes"])
    figure, axes = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2), dpi=100)
    bars = axes.barh(labels[::-1], values[::-1], color="#3b82f6")
    axes.set_xscale("log")
    axes.set_xlim(right=max(values) * 6)  # room for the labels
    axes.set_xlabel("bytes on disk (log scale)")
    axes.set_title(f"im2sp storage, {document['created_at']}")
    axes.bar_label(bars, labels=[human_bytes(v) for v in values[::-1]], padding=3, fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _totals(document: dict[str, Any]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for entry in document.get("entries", []):
        totals[f"{entry['modality']} {entry['representation']}"] += int(entry["stored_bytes"])
    totals["reclaimable"] = int(document.get("reclaimable_bytes", 0))
    return dict(totals)


def history(store: Store, limit: int = TREND_ROWS, unreadable: list[str] | None = None) -> list[dict[str, Any]]:
    """The last ``limit`` kept reports, oldest first.

    A kept report that does not parse as a report document is left out of the trend (its name is appended to
    ``unreadable``), so one damaged file never stops the storage report.
    """
    names = [f.relpath for f in store.walk_files(REPORTS) if f.relpath.endswith(".json")]
    reports = []
    for name in sorted(names)[-limit:]:
        try:
            document = json.loads(store.read_bytes(f"{REPORTS}/{name}"))
            _totals(document)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError):
            # gone, not JSON, or not a report's shape
            if unreadable is not None:
                unreadable.append(name)
            continue
        reports.append(document)
    return reports


def trend_markdown(reports: list[dict[str, Any]]) -> str:
    """A markdown table of the totals per representation over the given reports."""
    columns = sorted({column for report in reports for column in _totals(report)} - {"reclaimable"})
    lines = [
        "| report | " + " | ".join(columns) + " | reclaimable |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for report in reports:
        totals = _totals(report)
        cells = [human_bytes(totals.get(column, 0)) for column in [*columns, "reclaimable"]]
        lines.append(f"| {report.get('created_at', '?')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_rows(document: dict[str, Any]) -> list[dict[str, str | int]]:
    """The rows of the ``storage-report`` table artifact, led by what a data engineer reads.

    Columns: dataset, representation (with its modality: ``image units``), items, stored, raw, stored/raw,
    then source, stored/source, packed units, version, codebook. Sizes are in binary units (``122.0 MiB``);
    the exact integers are in the report document.
    """
    rows: list[dict[str, str | int]] = []
    for e in document["entries"]:
        to_raw = e["stored_bytes"] * 8 / e["raw_bits"] if e["raw_bits"] else None
        to_source = e["stored_bytes"] / e["source_bytes"] if e["source_bytes"] else None
        rows.append(
            {
                "dataset": e["dataset"],
                "representation": f"{e['modality']} {e['representation']}",
                "items": e["items"],
                "stored": human_bytes(e["stored_bytes"]),
                "raw": human_bytes(e["raw_bits"] / 8),
                "stored/raw": f"{to_raw:.2%}" if to_raw is not None else "-",
                "source": human_bytes(e["source_bytes"]),
                "stored/source": f"{to_source:.2%}" if to_source is not None else "-",
                "packed units": human_bytes(e["unit_bits"] / 8) if e["unit_bits"] is not None else "-",
                "version": e["version"] or "-",
                "codebook": e["codebook"] or "-",
            }
        )
    return rows


@flow(name="storage-report")
def storage_report_flow(config: PipelineConfig) -> dict[str, Any]:
    """Measure every store, keep the report in the store, publish table + markdown (chart, trend) artifacts."""
    store = config.store.open()
    document = storage_report(config)
    stamp = document["created_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    png = chart_png(document)
    repeated = repeats_newest(store, REPORTS, document)
    if repeated is None:
        store.write_bytes(f"{REPORTS}/{stamp}.json", json.dumps(document, indent=1).encode())
        store.write_bytes(f"{REPORTS}/{stamp}.png", png)
    else:  # the same measurements as the newest kept report: it still stands, nothing is written
        stamp = repeated
    rows = table_rows(document)
    create_table_artifact(key="storage-report", table=rows, description="Bytes per dataset and representation")
    stale = document["stale_versions"]
    stale_lines = [f"- {v['dataset']}/{v['kind']}/{v['version']}: {human_bytes(v['stored_bytes'])}" for v in stale]
    kept = document.get("kept_versions", [])
    kept_lines = [f"- {v['dataset']}/{v['kind']}/{v['version']}: {v['kept_because']}" for v in kept]
    skipped: list[str] = []
    unmeasured = document["unmeasured"]
    unmeasured_lines = [f"- {u['dataset']}/{u['kind']}: {u['problem']} (rerun {u['rerun']})" for u in unmeasured]
    markdown = "\n".join(
        [
            f"# Storage report, {document['created_at']}",
            "",
            f"![bytes per representation](data:image/png;base64,{base64.b64encode(png).decode()})",
            "",
            f"## Stale versions: {len(stale)}, {human_bytes(document['reclaimable_bytes'])} reclaimable",
            "",
            *(stale_lines or ["none"]),
            "",
            f"## Kept though no pointer names them: {len(kept)} (a downstream version reads them)",
            "",
            *(kept_lines or ["none"]),
            "",
            f"## Stores that could not be measured: {len(unmeasured)}",
            "",
            *(unmeasured_lines or ["none"]),
            "",
            "## Trend (last reports kept in the store)",
            "",
            trend_markdown(history(store, unreadable=skipped)),
            *(["", f"Left out (kept report unreadable): {', '.join(skipped)}"] if skipped else []),
            "",
        ]
    )
    create_markdown_artifact(
        key="storage-report-summary", markdown=markdown, description="Chart, stale versions and trend"
    )
    logger = get_run_logger()
    for name in skipped:
        logger.warning("storage report: kept report %s/%s is unreadable; left out of the trend", REPORTS, name)
    for line in unmeasured_lines:
        logger.warning("storage report: not measured: %s", line[2:])
    logger.info(
        "storage report: %d entries, %d stale versions (%s reclaimable), kept at %s/%s.json",
        len(rows),
        len(stale),
        human_bytes(document["reclaimable_bytes"]),
        store.url_of(REPORTS),
        stamp,
    )
    return document
