"""Flow ``retokenize-images``: rebuild only the unit stores that a codebook change made stale.

Triggered by the event ``im2sp.codebook.updated`` (the payload names the codebook and its kind, ``image`` or
``speech``) and by a cron schedule as a safety net (no payload: both kinds are checked). For each dataset it
compares the version the current codebook would produce with the version the dataset's ``current`` pointer
names; stale datasets are rebuilt by tokenize-images / unitize-speech, which skip shards already committed in
the new version (so a partly built version is only completed) and switch the pointer only when every shard is
committed. Afterwards old versions beyond ``retokenize.retention`` are deleted, except those a downstream version
still reads (the current training shards, training shards a run was trained on: ``storage.lineage``), which are
kept and named in the artifact with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.config import PipelineConfig
from flows.plans import image_units_version_id, speech_units_plan, tokenizer_ref
from flows.tokenize_images import tokenize_images_flow
from flows.train_vocoder import train_vocoder_flow
from flows.unitize_speech import unitize_speech_flow
from storage.errors import CorruptShardError, Im2SpError, NotCommittedError, UnsupportedFormatError
from storage.kinds import IMAGE_UNITS, SPEECH_UNITS
from storage.lineage import kept_by_downstream
from storage.store import Store
from storage.versions import apply_retention, current_version
from tasks.image_codebook import current_codebook
from tasks.models import tokenizer_for

KINDS = ("image", "speech")


@dataclass
class KindOutcome:
    """What retokenize-images found and did for one kind of units."""

    kind: str
    expected_version: str | None = None
    stale: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    deleted: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, dict[str, str]] = field(default_factory=dict)
    note: str = ""


def _rebuild_stale(
    config: PipelineConfig, store: Store, outcome: KindOutcome, store_kind: str, rebuild: Callable[..., Any]
) -> KindOutcome:
    """Rebuild the datasets whose current version is not ``outcome.expected_version``, then apply retention."""
    for dataset in config.datasets:
        current = current_version(store, dataset, store_kind, damaged_as_missing=True)  # stale: rebuilt, rewritten
        if current is None or current.version != outcome.expected_version:
            outcome.stale.append(dataset)
    if outcome.stale:
        rebuild(config, datasets=outcome.stale)
        outcome.rebuilt = list(outcome.stale)
    for dataset in config.datasets:
        read = {v: why for (kind, v), why in kept_by_downstream(store, dataset).items() if kind == store_kind}
        current = current_version(store, dataset, store_kind, damaged_as_missing=True)
        outcome.kept[dataset] = {v: why for v, why in read.items() if current is None or v != current.version}
        retention = config.retokenize.retention
        outcome.deleted[dataset] = apply_retention(store, dataset, store_kind, retention, read_downstream=read)
    return outcome


def _images(config: PipelineConfig, store: Store, codebook_id: str | None) -> KindOutcome:
    outcome = KindOutcome("image")
    ref = tokenizer_ref(config, store)
    current = current_codebook(store)
    if codebook_id and current is not None and current[0] != codebook_id:
        outcome.note = f"the event named codebook {codebook_id}; {current[0]} is current and was used"
    outcome.expected_version = image_units_version_id(config, tokenizer_for(ref).fingerprint)
    return _rebuild_stale(config, store, outcome, IMAGE_UNITS, tokenize_images_flow)


def _speech(config: PipelineConfig, store: Store) -> KindOutcome:
    outcome = KindOutcome("speech")
    try:
        outcome.expected_version = speech_units_plan(config, store).version_id
    except (CorruptShardError, NotCommittedError, UnsupportedFormatError):
        raise  # a damaged codebook (pointer, marker or files) is not a reason to skip quietly
    except Im2SpError as error:
        outcome.note = f"skipped: {error}"
        return outcome
    _rebuild_stale(config, store, outcome, SPEECH_UNITS, unitize_speech_flow)
    # The new codebook's units need a way back to speech: its vocoder, learned once they exist (a no-op when it is).
    vocoder = train_vocoder_flow(config)
    outcome.note = "; ".join(
        filter(None, [outcome.note, f"vocoder {vocoder.version} for codebook {vocoder.codebook_id}"])
    )
    return outcome


@flow(name="retokenize-images")
def retokenize_images_flow(
    config: PipelineConfig, codebook_id: str | None = None, kind: str | None = None
) -> list[KindOutcome]:
    """Re-tokenize (images) and re-unitize (speech) the datasets whose units a newer codebook made stale.

    Args:
        config: The pipeline config.
        codebook_id: The codebook an ``im2sp.codebook.updated`` event announced (informational: the current
            codebook is always the one used, so a late event never rolls a store back).
        kind: ``image`` or ``speech`` to check one kind (the event's); empty or None checks both.
    """
    logger = get_run_logger()
    if kind and kind not in KINDS:
        raise Im2SpError(f"kind must be one of {', '.join(KINDS)} (or empty for both), got {kind!r}")
    store = config.store.open()
    outcomes = []
    if kind in (None, "", "image"):
        outcomes.append(_images(config, store, codebook_id or None))
    if kind in (None, "", "speech"):
        outcomes.append(_speech(config, store))
    lines = [
        "| units | current codebook's version | stale datasets | rebuilt | versions deleted | kept (read downstream) "
        "| note |",
        "|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        deleted = ", ".join(f"{d}: {len(v)}" for d, v in outcome.deleted.items() if v) or "none"
        kept = "; ".join(f"{d}/{v}: {why}" for d, found in outcome.kept.items() for v, why in found.items()) or "none"
        logger.info(
            "%s units: expected version %s, stale %s, rebuilt %s, deleted %s",
            outcome.kind,
            outcome.expected_version,
            outcome.stale or "none",
            outcome.rebuilt or "none",
            deleted,
        )
        lines.append(
            f"| {outcome.kind} | {outcome.expected_version or '-'} | {', '.join(outcome.stale) or 'none'} | "
            f"{', '.join(outcome.rebuilt) or 'none'} | {deleted} | {kept} | {outcome.note} |"
        )
    trigger = f"codebook {codebook_id} ({kind})" if codebook_id else "schedule or manual run"
    create_markdown_artifact(
        key="retokenize-images",
        markdown=f"# retokenize-images\n\nTrigger: {trigger}\n\n" + "\n".join(lines) + "\n",
        description="Stale unit stores rebuilt after a codebook change",
    )
    return outcomes
