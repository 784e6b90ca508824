"""The rejection limit: a manifest that rejects most of a table's items is a wrong config, not a dataset.

Per-item rejections are normal (a missing wav, a truncated JPEG) and stay per item. When more than a dataset's
``max_rejected_fraction`` of a table is rejected — every utterance because ``speech`` names the wrong folder —
build-manifests fails with one line that says which key to check, and the manifests are not published.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pyarrow as pa

from storage.errors import TooManyRejectedError
from storage.sources.records import OK


def check_rejections(dataset: str, keys: Mapping[str, str], tables: dict[str, pa.Table], limit: float) -> None:
    """Raise when a table rejects more than ``limit`` of its items.

    Args:
        dataset: Dataset name (as configured).
        keys: Per table, the config key (under ``datasets.<name>``) that most often explains its rejections
            (the dataset kind's ``config_keys``); ``root`` for a table it does not name.
        tables: Manifest tables with ``id``, ``status`` and ``reason`` columns, by name.
        limit: The dataset's ``max_rejected_fraction``.

    Raises:
        TooManyRejectedError: One line: dataset, table, counts, the most common reason with one example item,
            and the config key to check.
    """
    for name, table in tables.items():
        rows = table.select(["id", "status", "reason"]).to_pylist()
        rejected = [row for row in rows if row["status"] != OK]
        if not rows or len(rejected) <= limit * len(rows):
            continue
        kinds = Counter(row["reason"].split(":")[0] for row in rejected)
        reason, count = kinds.most_common(1)[0]
        example = next(row for row in rejected if row["reason"].split(":")[0] == reason)
        key = keys.get(name, "root")
        why = " ".join(example["reason"].split())  # one line, whatever the decoder said
        raise TooManyRejectedError(
            f"{dataset}: {len(rejected)} of {len(rows)} {name} rejected (more than max_rejected_fraction "
            f"{limit:g}); most common: {reason} ({count}), e.g. {example['id']!r}: {why}; "
            f"check datasets.{dataset}.{key} (and datasets.{dataset}.root)"
        )
