"""Kept reports: a new one joins the trend only when its measurements differ from the newest kept one.

The storage-report flow keeps each report as ``<prefix>/<YYYYMMDDTHHMMSSZ>.json`` (and its chart, ``.png``), so
size over time can be read back; evaluate-im2sp keeps its evaluation reports the same way (JSON only). A rerun
on an unchanged store measures the same sizes again; keeping that
report too would add a trend row that says nothing and rewrite the store on a run that changed nothing. So a
report whose measurements (everything but ``created_at``) equal the newest kept report's is not kept again:
the newest one still stands for the store as it is.
"""

from __future__ import annotations

import json
from typing import Any

from storage.store import Store

#: The fields of a kept report that record when it was made, not what it measured.
WHEN_FIELDS = frozenset({"created_at"})


def measurements(document: dict[str, Any]) -> Any:
    """A report document without its timestamp, as plain JSON values (tuples become lists)."""
    return json.loads(json.dumps({k: v for k, v in document.items() if k not in WHEN_FIELDS}))


def newest_kept(store: Store, prefix: str) -> str | None:
    """The name (without ``.json``) of the newest report kept under ``prefix``, or None when none is."""
    names = [f.relpath for f in store.walk_files(prefix) if f.relpath.endswith(".json") and "/" not in f.relpath]
    return max(names).removesuffix(".json") if names else None  # UTC stamps: the largest name is the newest


def repeats_newest(
    store: Store, prefix: str, document: dict[str, Any], companions: tuple[str, ...] = (".png",)
) -> str | None:
    """The newest kept report's name when ``document`` measures exactly what it did (and its companions are there).

    Args:
        store: The store.
        prefix: Where the reports are kept.
        document: The new report.
        companions: Suffixes of the files kept beside each ``.json`` (the storage report's ``.png`` chart; none
            for the evaluation report): a kept report missing one is not whole, so the new one is kept.

    Returns:
        None (keep the new report) when nothing is kept yet, when the newest kept report cannot be read, or
        when any measurement differs.
    """
    name = newest_kept(store, prefix)
    if name is None or not all(store.exists(f"{prefix}/{name}{suffix}") for suffix in companions):
        return None
    try:
        kept = json.loads(store.read_bytes(f"{prefix}/{name}.json"))
    except (OSError, ValueError):  # gone since listed, or damaged: a new report replaces it in the trend
        return None
    if not isinstance(kept, dict) or measurements(kept) != measurements(document):
        return None
    return name
