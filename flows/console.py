"""What the CLI shows: a progress bar for long work, a one-screen summary, the storage table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from storage.manifests import ManifestResult
from storage.report import StaleVersion, StorageEntry, Unmeasured
from storage.verify import Damage


class RichProgressSink:
    """A ``storage.progress`` sink drawing one rich progress bar per task."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None

    def start(self, label: str, total: int) -> None:
        """Show a new bar."""
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, steps: int) -> None:
        """Move the bar."""
        if self._task is not None:
            self._progress.advance(self._task, steps)

    def finish(self) -> None:
        """Remove the bar."""
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self._progress.stop()


def human_bytes(size: float) -> str:
    """Bytes in binary units (``12.3 KiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def manifest_summary(results: Iterable[ManifestResult]) -> Table:
    """Return the one-screen summary of a build-manifests run: counts, rejects by reason, output URLs."""
    table = Table(title="build-manifests", show_lines=False)
    for column in ("dataset", "table", "listed", "ok", "rejected", "state / output"):
        table.add_column(column, justify="right" if column in ("listed", "ok", "rejected") else "left")
    for result in results:
        state = "up to date" if result.skipped else "built"
        for index, (name, counts) in enumerate(result.counts.items()):
            table.add_row(
                result.dataset if index == 0 else "",
                name,
                str(counts["listed"]),
                str(counts["ok"]),
                str(counts["rejected"]),
                f"{state}: {result.url}" if index == 0 else "",
            )
        for reason, count in sorted(result.reasons.items()):
            table.add_row("", "", "", "", str(count), f"[yellow]{reason}[/yellow]")
    return table


def storage_table(entries: Iterable[StorageEntry]) -> Table:
    """Return the storage report as a rich table."""
    table = Table(title="storage report")
    for column in ("dataset", "modality", "representation", "items", "stored", "raw", "stored/raw", "path"):
        table.add_column(column, justify="right" if column in ("items", "stored", "raw", "stored/raw") else "left")
    for entry in entries:
        ratio = entry.ratio_to_raw
        table.add_row(
            entry.dataset,
            entry.modality,
            entry.representation,
            str(entry.items),
            human_bytes(entry.stored_bytes),
            human_bytes(entry.raw_bits / 8),
            f"{ratio:.2%}" if ratio is not None else "-",
            entry.path,
        )
    return table


def stale_table(stale: Iterable[StaleVersion]) -> Table:
    """Return the versions no pointer names, with the bytes deleting them would free (or why one is kept)."""
    rows = list(stale)
    reclaimable = sum(v.stored_bytes for v in rows if not v.kept_because)
    table = Table(title=f"stale versions: {human_bytes(reclaimable)} reclaimable")
    for column in ("dataset", "kind", "version", "created", "stored", "kept because"):
        table.add_column(column, justify="right" if column == "stored" else "left", overflow="fold")
    for version in rows:
        table.add_row(
            version.dataset,
            version.kind,
            version.version,
            version.created_at,
            human_bytes(version.stored_bytes),
            version.kept_because or "-",
        )
    return table


def unmeasured_table(unmeasured: Iterable[Unmeasured]) -> Table:
    """Return the stores the storage report could not read, with the flow whose rerun repairs each."""
    table = Table(title="not measured: damaged or unknown control files (im2sp verify lists every damaged file)")
    for column in ("dataset", "kind", "problem", "rerun"):
        table.add_column(column, overflow="fold")
    for u in unmeasured:
        table.add_row(u.dataset, u.kind, u.problem, u.rerun)
    return table


def damage_table(damaged: Iterable[Damage]) -> Table:
    """Return the shards ``im2sp verify`` found damaged, with the flow that rebuilds each."""
    table = Table(title="damaged shards and control files")
    for column in ("dataset", "kind", "version", "shard", "reason", "rerun"):
        table.add_column(column, overflow="fold")
    for d in damaged:
        table.add_row(d.dataset, d.kind, d.version, d.shard_id, d.reason, d.rebuilt_by)
    return table


def evaluation_table(results: Any) -> Table:
    """The evaluate-im2sp metrics: topline and generated rows per dataset and model (×100, as the paper reports)."""
    from flows.evaluate_im2sp import SYSTEMS, metric_rows

    rows = metric_rows(list(results))
    table = Table(
        title="evaluate-im2sp (caption metrics ×100)",
        caption=(
            "n/c: not configured; WER (utterances): over every reference utterance of the test images, caption "
            "metrics on each image's first; BLEU-1…3 and SPICE are in the evaluate-im2sp-metrics artifact"
        ),
    )
    for column in _EVALUATION_COLUMNS.values():
        table.add_column(column, justify="left" if column in ("dataset", "model", "system") else "right")
    for row in rows:
        system = next(name for name, label in SYSTEMS.items() if label == row["system"])
        cells = [system if key == "system" else str(row[key]) for key in _EVALUATION_COLUMNS]
        if row["wer_utterances"] != "-":  # how many utterances the WER covers
            cells[list(_EVALUATION_COLUMNS).index("wer")] += f" ({row['wer_utterances']})"
        table.add_row(*("n/c" if cell == "not configured" else cell for cell in cells))
    return table


#: The metrics table's columns on a terminal (artifact key → heading); the artifact has every metric.
_EVALUATION_COLUMNS = {
    "dataset": "dataset",
    "model": "model",
    "system": "system",
    "Bleu_4": "BLEU-4",
    "METEOR": "METEOR",
    "ROUGE_L": "ROUGE-L",
    "CIDEr": "CIDEr",
    "wer": "WER (utts)",
    "unit_error_rate": "UER",
    "paper_bleu4": "paper BLEU-4",
    "bleu4_vs_paper": "Δ",
}


def evaluation_report_table(latest: Iterable[dict[str, Any]]) -> Table:
    """The newest kept evaluation of each dataset and model (``im2sp report evaluation``): BLEU-4 and WER ×100."""
    from flows.evaluation_report import percent, wer_cell

    table = Table(title="evaluate-im2sp: latest run per dataset and model (×100)")
    headings = ("dataset", "model", "step", "run", "vocoder", "row", "BLEU-4", "CIDEr", "WER (utts)", "UER")
    for column in headings:
        table.add_column(column, justify="left" if column in headings[:6] else "right", overflow="fold")
    for entry in latest:
        vocoder = entry.get("vocoder") or {}
        named = f"{vocoder.get('kind', '-')} {vocoder.get('version') or vocoder.get('fingerprint') or ''}".strip()
        step = str(entry["model"].get("step") or "-")
        first = [entry["dataset"], entry["model"]["kind"], step, str(entry.get("created_at", "-")), named]
        for index, (row, scores) in enumerate(entry["rows"].items()):
            metrics = scores.get("metrics") or {}
            uer = entry.get("unit_error_rate") if row == "generated" else None
            table.add_row(
                *(first if index == 0 else [""] * len(first)),
                row,
                percent(metrics.get("Bleu_4")) if metrics else "n/c",
                percent(metrics.get("CIDEr")) if metrics else "n/c",
                wer_cell(scores),
                f"{uer:.3f}" if isinstance(uer, int | float) else "-",
            )
    return table


def training_table(result: Any) -> Table:
    """The metrics a train-im2sp call logged: the loss falling is the point."""
    table = Table(title=f"train-im2sp run {result.run_id}: step {result.step} (resumed from {result.resumed_from})")
    for column in ("step", "loss", "unit accuracy", "samples/s", "lr"):
        table.add_column(column, justify="right")
    for row in result.history:
        table.add_row(
            str(row["step"]),
            f"{row['loss']:.3f}",
            f"{row['unit_accuracy']:.3f}",
            f"{row['samples_per_s']:.1f}",
            f"{row['lr']:.2e}",
        )
    return table


def units_summary(results: Iterable[Any], title: str = "tokenize-images") -> Table:
    """Return the one-screen summary of a per-shard flow (tokenize-images, speech features, speech units)."""
    table = Table(title=title)
    for column in ("dataset", "stored", "rejected", "shards built", "skipped", "on disk", "PSNR", "output"):
        table.add_column(column, justify="left" if column in ("dataset", "output") else "right")
    for r in results:
        reconstruction = getattr(r, "reconstruction", None)
        psnr = f"{reconstruction.psnr_mean:.1f} dB" if reconstruction is not None else "-"
        table.add_row(
            r.dataset,
            str(r.stored),
            str(r.rejected),
            str(r.shards_built),
            str(r.shards_skipped),
            human_bytes(r.stored_bytes),
            psnr,
            r.url,
        )
    return table
