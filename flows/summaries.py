"""What ``im2sp run`` prints when a flow ends: one function per flow result, named in its registry entry.

Each takes what the flow returned and gives the renderables (rich tables or lines) of its one-screen summary.
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType

from flows.console import (
    evaluation_table,
    manifest_summary,
    stale_table,
    storage_table,
    training_table,
    units_summary,
    unmeasured_table,
)
from storage.report import StaleVersion, StorageEntry, Unmeasured


def manifests(results: Any) -> list[RenderableType]:
    """build-manifests: counts per table, rejections by reason, where the manifests went."""
    return [manifest_summary(results)]


def image_units(results: Any) -> list[RenderableType]:
    """tokenize-images: units per dataset, and where each reconstruction preview was kept."""
    lines: list[RenderableType] = [units_summary(results)]
    lines += [
        f"reconstruction preview ({result.dataset}): {result.reconstruction.preview_key}"
        for result in results
        if result.reconstruction is not None
    ]
    return lines


def stage_units(title: str) -> Any:
    """A summary of per-dataset shard results (speech features, speech units, training shards)."""

    def summary(results: Any) -> list[RenderableType]:
        return [units_summary(results, title=title)]

    return summary


def image_codebook(result: Any) -> list[RenderableType]:
    """learn-image-codebook: the codebook's id, size and how many images it learned from."""
    return [f"image codebook {result.codebook_id} (K={result.codebook_size}, {result.images} images)"]


def speech_codebook(result: Any) -> list[RenderableType]:
    """learn-speech-codebook: the codebook's id, size and how many frames it learned from."""
    return [f"speech codebook {result.codebook_id} (K={result.clusters}, {result.sample_frames} frames)"]


def vocoder(result: Any) -> list[RenderableType]:
    """train-vocoder: which vocoder speaks which codebook now, and what this run did."""
    if not result.trained:
        return [f"vocoder {result.version} ({result.kind}) for speech codebook {result.codebook_id}: up to date"]
    last = result.history[-1] if result.history else {}
    loss = f", final loss {last['loss']:.3f}" if "loss" in last else ""
    return [
        f"vocoder {result.version} ({result.kind}) for speech codebook {result.codebook_id}: {result.steps} steps "
        f"(resumed from {result.resumed_from}) on {result.utterances} utterances, {len(result.rejected)} left out"
        f"{loss} → {result.url}"
    ]


def retokenized(outcomes: Any) -> list[RenderableType]:
    """retokenize-images: per kind, what was stale and what was rebuilt."""
    return [
        f"{o.kind} units: stale {', '.join(o.stale) or 'none'}, rebuilt {', '.join(o.rebuilt) or 'none'}"
        + (f" ({o.note})" if o.note else "")
        for o in outcomes
    ]


def training(result: Any) -> list[RenderableType]:
    """train-im2sp: the run, its steps and losses."""
    return [training_table(result)]


def evaluation(results: Any) -> list[RenderableType]:
    """evaluate-im2sp: the metrics per dataset and model."""
    return [evaluation_table(results)]


def storage(document: Any) -> list[RenderableType]:
    """storage-report: the storage table, then stale (and kept) versions and unmeasured stores when there are any."""
    lines: list[RenderableType] = [storage_table(StorageEntry(**entry) for entry in document["entries"])]
    listed = [*document["stale_versions"], *document.get("kept_versions", [])]
    if listed:
        lines.append(stale_table(StaleVersion(**stale) for stale in listed))
    if document.get("unmeasured"):
        lines.append(unmeasured_table(Unmeasured(**u) for u in document["unmeasured"]))
    return lines


def nothing(_: Any) -> list[RenderableType]:
    """For a flow whose stages print their own summaries (the pipeline)."""
    return []
