"""The evaluation report: one JSON document per evaluate-im2sp run, kept in the store and trended.

The document (docs/FORMAT.md §13a) records, per dataset and model, what was evaluated and the three rows'
scores; :func:`storage.evaluation_reports.keep_evaluation` keeps it unless it repeats the newest kept one, and
:func:`trend_markdown` shows the kept runs, oldest first.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.evaluation_reports import ROWS
from storage.format import FORMAT_VERSION
from storage.store import Store
from tasks.evaluate import EvalResult
from tasks.models import AsrRef

#: The trend's rows: this many kept runs, newest last.
TREND_RUNS = 10
_STEP = re.compile(r"step-0*(\d+)$")


def _plain(value: Any) -> Any:
    """A JSON value with NaN and infinities as null (JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def checkpoint_step(checkpoint: str) -> int | None:
    """The training step of an ``im2sp`` checkpoint folder (``…/step-00000200``), or None for other checkpoints."""
    match = _STEP.search(Path(checkpoint).name) if checkpoint else None
    return int(match.group(1)) if match else None


def _entry(result: EvalResult, store: Store) -> dict[str, Any]:
    """One evaluation of the document: what was evaluated, and its rows."""
    made = result.made_by
    model = made.get("model", {})
    vocoder = dict(made.get("vocoder", {}))
    wavs = {"resynthesis": result.resynthesis_wavs, "generated": result.wavs}
    rows = {
        "topline": (result.topline, result.topline_wer, result.topline_wer_utterances, result.topline_note),
        "resynthesis": (
            result.resynthesis,
            result.resynthesis_wer,
            result.resynthesis_wer_utterances,
            result.resynthesis_note,
        ),
        "generated": (result.generated, None, None, result.generated_note),
    }
    return {
        "dataset": result.dataset,
        "dataset_kind": result.dataset_kind,
        "model": {
            "kind": result.model,
            "checkpoint": model.get("checkpoint"),
            "step": checkpoint_step(str(model.get("checkpoint") or "")),
            "fingerprint": model.get("fingerprint"),
        },
        "training_shards": made.get("training_shards"),
        "speech_units": made.get("speech_units"),
        "codebook": vocoder.pop("codebook", None),
        "vocoder": vocoder if vocoder.get("kind") else None,
        "images": result.images,
        "unit_error_rate": result.unit_error_rate,
        "generated_length": result.generated_length,
        "reference_length": result.reference_length,
        "rows": {
            name: {
                "metrics": metrics,
                "wer": wer,
                "wer_utterances": utterances if wer is not None else None,
                "note": note,
                "wavs": store.url_of(wavs[name]) if wavs.get(name) else None,
            }
            for name, (metrics, wer, utterances, note) in rows.items()
        },
        "picture": {**result.picture_wavs, "png": store.url_of(result.picture)} if result.picture else None,
    }


def evaluation_document(results: list[EvalResult], store: Store, asr: AsrRef | None, split: str) -> dict[str, Any]:
    """The evaluation report document of one run (JSON values only; ``created_at`` in UTC, to the microsecond)."""
    document: dict[str, Any] = _plain(
        {
            "format_version": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "split": split,
            "asr": {"kind": asr.name, "checkpoint": asr.checkpoint} if asr else None,
            "evaluations": [_entry(result, store) for result in results],
        }
    )
    return document


def percent(value: Any) -> str:
    """A score ×100 with one decimal, ``-`` when none."""
    return f"{100 * value:.1f}" if isinstance(value, int | float) else "-"


def wer_cell(row: dict[str, Any]) -> str:
    """A kept row's WER ×100 and, in brackets, the utterances it covers (reports from before the count: none)."""
    count = row.get("wer_utterances")
    return percent(row.get("wer")) + (f" ({count})" if isinstance(count, int) and row.get("wer") is not None else "")


def trend_markdown(reports: list[dict[str, Any]]) -> str:
    """A markdown table over the kept runs (oldest first): BLEU-4 and WER (utterances) per row, unit error rate."""
    lines = [
        "| run | dataset | model | step | " + " | ".join(f"{row} BLEU-4" for row in ROWS) + " | "
        "topline WER (utterances) | resynthesis WER (utterances) | UER |",
        "|---|---|---|---|" + "---|" * (len(ROWS) + 3),
    ]
    for report in reports:
        for evaluation in report["evaluations"]:
            rows = evaluation["rows"]
            bleu = [percent((rows[row].get("metrics") or {}).get("Bleu_4")) for row in ROWS]
            uer = evaluation.get("unit_error_rate")
            cells = [
                str(report.get("created_at", report["name"])),
                evaluation["dataset"],
                evaluation["model"]["kind"],
                str(evaluation["model"].get("step") or "-"),
                *bleu,
                wer_cell(rows["topline"]),
                wer_cell(rows["resynthesis"]),
                f"{uer:.3f}" if isinstance(uer, int | float) else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
