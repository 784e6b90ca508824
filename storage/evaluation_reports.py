"""Kept evaluation reports: one JSON per evaluate-im2sp run, read back for the trend and ``im2sp report evaluation``.

Each run keeps ``reports/evaluation/<YYYYMMDDTHHMMSSffffffZ>.json`` (docs/FORMAT.md §13a): per dataset and
model, what was evaluated (model kind and checkpoint step and fingerprint, training shards, speech units,
codebook, vocoder), the topline / resynthesis / generated rows with their caption metrics and WER, and the ASR.
A run that measured exactly what the newest kept report did keeps nothing new (:mod:`storage.kept_reports`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from storage.errors import UnsupportedFormatError
from storage.format import KNOWN_FORMAT_VERSIONS
from storage.kept_reports import repeats_newest
from storage.store import Store

#: Where the evaluation reports are kept in the store.
EVALUATION_REPORTS = "reports/evaluation"
#: The rows of each evaluation, in the order they are shown.
ROWS = ("topline", "resynthesis", "generated")


def report_name(created_at: str) -> str:
    """The kept file's name (no ``.json``) for a report made at ``created_at`` (ISO 8601 with microseconds, UTC).

    Microseconds keep two runs in one second apart; names sort as times do.
    """
    return datetime.fromisoformat(created_at).strftime("%Y%m%dT%H%M%S%fZ")


def keep_evaluation(store: Store, document: dict[str, Any]) -> tuple[str, bool]:
    """Keep the report unless it repeats the newest kept one; its name, and whether it was written."""
    repeated = repeats_newest(store, EVALUATION_REPORTS, document, companions=())
    if repeated is not None:
        return repeated, False
    name = report_name(document["created_at"])
    store.write_bytes(f"{EVALUATION_REPORTS}/{name}.json", json.dumps(document, indent=1).encode())
    return name, True


def read_evaluation(store: Store, name: str) -> dict[str, Any]:
    """One kept report, checked for its shape.

    Raises:
        UnsupportedFormatError: Its ``format_version`` is not one this reader knows.
        OSError: It is gone.
        ValueError: It is not JSON, or not a report's shape.
    """
    document = json.loads(store.read_bytes(f"{EVALUATION_REPORTS}/{name}.json"))
    if document.get("format_version") not in KNOWN_FORMAT_VERSIONS:
        raise UnsupportedFormatError(f"evaluation report {name}: format_version {document.get('format_version')!r}")
    evaluations = document.get("evaluations")
    if not isinstance(evaluations, list) or not all(_is_evaluation(e) for e in evaluations):
        raise ValueError(f"evaluation report {name}: not an evaluation report's shape")
    return dict(document)


def _is_evaluation(entry: Any) -> bool:
    """Whether one entry of ``evaluations`` has what the trend and the command read."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("dataset"), str)
        and isinstance(entry.get("model"), dict)
        and isinstance(entry["model"].get("kind"), str)
        and isinstance(entry.get("rows"), dict)
        and all(isinstance(entry["rows"].get(row), dict) for row in ROWS)
    )


def kept_evaluations(
    store: Store, limit: int | None = None, unreadable: list[str] | None = None
) -> list[dict[str, Any]]:
    """The last ``limit`` kept reports (all when None), oldest first, each with ``name`` added.

    A kept report that cannot be read as one is left out (its name appended to ``unreadable``), so one damaged
    file never stops a trend or the command.
    """
    names = sorted(
        f.relpath.removesuffix(".json")
        for f in store.walk_files(EVALUATION_REPORTS)
        if f.relpath.endswith(".json") and "/" not in f.relpath
    )
    reports = []
    for name in names[-limit:] if limit else names:
        try:
            document = read_evaluation(store, name)
        except (OSError, ValueError, AttributeError, UnsupportedFormatError):
            if unreadable is not None:
                unreadable.append(name)
            continue
        reports.append({**document, "name": name})
    return reports


def latest_evaluations(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest evaluation of each dataset and model kind over ``reports`` (oldest first), with its run's time.

    Returns:
        One entry per (dataset, model kind), sorted by both: the evaluation's fields plus ``created_at`` and
        ``report`` (the kept report's name).
    """
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for report in reports:
        for evaluation in report["evaluations"]:
            key = (str(evaluation["dataset"]), str(evaluation["model"]["kind"]))
            latest[key] = {**evaluation, "created_at": report.get("created_at"), "report": report["name"]}
    return [latest[key] for key in sorted(latest)]
