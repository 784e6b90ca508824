"""What speaks in evaluate-im2sp, from lineage: the speech codebook, its vocoder, the references' stored units.

The speech codebook is the one that made the evaluated training shards' units: their ``version.json`` names
the speech-units version (``produced_by.speech_units``), whose ``version.json`` names the codebook
(``produced_by.codebook``) and its K (``codebook_size``). Never the config's, never "current".

The vocoder is ``evaluation.vocoder_checkpoint`` when set, else the store's vocoder for that codebook
(:func:`storage.vocoder_store.current_vocoder`, published by train-vocoder; its finished files are shard
``all``, loaded from a verified local copy, under the registry name its ``version.json`` records). A vocoder
whose ``config.json`` records a ``codebook`` id other than the units' is refused in one line naming both;
one that records none is refused when its unit table (``num_embeddings`` or ``clusters``) cannot voice every
unit it is given (fewer entries than K), and noted when its size differs from K (a released vocoder is often
run on units of a codebook imported from its authors).

The reference utterances' stored full-rate units (every utterance of each evaluated image) come from that
speech-units version, the shard of the same id as the training shard that holds the utterance; they are checked
against the training shards' deduplicated units, so a resynthesis never voices units the model was not trained
against.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from storage.dedup import dedup
from storage.errors import Im2SpError
from storage.kinds import SPEECH_UNITS, TRAINING_SHARDS
from storage.reader import verified_local_copy
from storage.speech_units_writer import read_speech_units
from storage.store import Store
from storage.versions import StoreVersion
from storage.vocoder_store import FINISHED, current_vocoder
from tasks.models import VocoderRef


@dataclass(frozen=True)
class SpeechLineage:
    """The speech side of a training-shards version: its speech-units version, codebook id and K."""

    units_version: str
    codebook: str
    clusters: int


@dataclass(frozen=True)
class VocoderChoice:
    """The vocoder that speaks one dataset's units, or why there is none.

    Attributes:
        ref: The vocoder to load (None: not configured).
        note: Why there is none (``not configured: …``), or a remark on the one chosen ("" when none).
        source: What it is, for the evaluation report: ``kind``, ``codebook``, and ``version`` (the store's
            vocoder version) or ``checkpoint`` (a path given in the config).
    """

    ref: VocoderRef | None
    note: str = ""
    source: dict[str, Any] = field(default_factory=dict)


def speech_lineage(store: Store, dataset: str, training_version: str) -> SpeechLineage:
    """The speech-units version, codebook id and K that made a training-shards version's speech units."""
    joined = StoreVersion(store, dataset, TRAINING_SHARDS, training_version).info()["produced_by"]
    units_id = str(joined["speech_units"])
    produced_by = StoreVersion(store, dataset, SPEECH_UNITS, units_id).info()["produced_by"]
    return SpeechLineage(units_id, str(produced_by["codebook"]), int(produced_by["codebook_size"]))


def _vocoder_config(ref: VocoderRef) -> tuple[Path, dict[str, Any]] | None:
    """The vocoder's ``config.json`` (its settings' ``config``, else beside the checkpoint), or None if absent."""
    path = ref.path
    if path is None:
        return None
    configured = getattr(ref.options, "config", None)
    where = Path(configured) if configured else (path if path.is_dir() else path.parent) / "config.json"
    try:
        document = json.loads(where.read_text())
    except (OSError, ValueError):
        return None  # loading the vocoder says what is wrong with its files
    return (where, document) if isinstance(document, dict) else None


def check_vocoder(ref: VocoderRef, lineage: SpeechLineage, *, model_units: int) -> str:
    """Refuse a vocoder that is not the units' codebook's; a note when its unit table's size differs from K.

    Args:
        ref: The configured vocoder.
        lineage: The evaluated units' speech codebook.
        model_units: K of the model's generated units (ids in ``[0, model_units)``).

    Raises:
        Im2SpError: One line: the vocoder's codebook (or unit count) and the units'.
    """
    found = _vocoder_config(ref)
    if found is None:
        return ""
    where, config = found
    recorded = config.get("codebook")
    if recorded is not None and str(recorded) != lineage.codebook:
        raise Im2SpError(
            f"vocoder {where.parent} was trained for speech codebook {recorded}, but the evaluated units are of "
            f"speech codebook {lineage.codebook}: give its vocoder, or leave evaluation.vocoder_checkpoint out "
            "to use the store's (train-vocoder)"
        )
    count = config.get("num_embeddings", config.get("clusters"))
    if recorded is not None or not isinstance(count, int):
        return ""
    needed = max(lineage.clusters, model_units)
    if count < needed:
        raise Im2SpError(
            f"vocoder {where.parent} voices {count} units, but the evaluated units are of speech codebook "
            f"{lineage.codebook} (K={lineage.clusters}; the model generates {model_units}): give the vocoder of "
            f"codebook {lineage.codebook}, or run train-vocoder"
        )
    if count != lineage.clusters:
        return f"vocoder has {count} units, speech codebook {lineage.codebook} has K={lineage.clusters}"
    return ""


def choose_vocoder(
    store: Store, lineage: SpeechLineage, configured: VocoderRef | None, *, model_units: int, device: str
) -> VocoderChoice:
    """The configured vocoder (checked), else the store's for the units' codebook, else why there is none.

    Raises:
        Im2SpError: The configured vocoder is another codebook's (:func:`check_vocoder`), or the store's
            pointer or vocoder files are damaged.
    """
    if configured is not None:
        note = check_vocoder(configured, lineage, model_units=model_units)
        source = {"kind": configured.name, "codebook": lineage.codebook, "checkpoint": configured.checkpoint}
        return VocoderChoice(configured, note, source)
    version = current_vocoder(store, lineage.codebook)
    if version is None:
        why = f"not configured: no vocoder for speech codebook {lineage.codebook} (run train-vocoder)"
        return VocoderChoice(None, why, {"codebook": lineage.codebook})
    kind = str(version.info()["produced_by"]["kind"])
    ref = VocoderRef(kind, str(verified_local_copy(version, FINISHED)), device)
    note = check_vocoder(ref, lineage, model_units=model_units)
    return VocoderChoice(ref, note, {"kind": kind, "codebook": lineage.codebook, "version": version.version})


def reference_units(
    store: Store, dataset: str, lineage: SpeechLineage, refs: Mapping[str, tuple[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Reference utterances as stored: each one's full-rate speech units, by utterance key (in ``refs``' order).

    Args:
        store: The store.
        dataset: The dataset.
        lineage: The speech-units version the training shards were built from.
        refs: Utterance key → (training shard id, its deduplicated units in the training shards).

    Raises:
        Im2SpError: A speech-units shard is not committed or damaged, or no longer holds what the training
            shards were built from (rerun build-training-shards).
    """
    version = StoreVersion(store, dataset, SPEECH_UNITS, lineage.units_version)
    by_shard: dict[str, list[str]] = defaultdict(list)
    for key, (shard, _) in refs.items():
        by_shard[shard].append(key)
    full: dict[str, np.ndarray] = {}
    for shard, keys in sorted(by_shard.items()):
        stored = read_speech_units(version, shard)
        for key in keys:
            trained = refs[key][1]
            if key not in stored or not np.array_equal(dedup(stored[key][0])[0], trained):
                raise Im2SpError(
                    f"speech units of {key} in {version.url}/{shard} are not those the training shards hold: "
                    "rerun build-training-shards"
                )
            full[key] = np.asarray(stored[key][0], dtype=np.int64)
    return {key: full[key] for key in refs}
