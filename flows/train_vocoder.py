"""Flow ``train-vocoder``: a unit vocoder for the current speech codebook, so every codebook has a way back to speech.

It learns from the training splits' pairs (full-rate speech units of the current speech-units version of each
dataset, the recording they were computed from) and stores the vocoder as a version of ``_shared/vocoders``
named by the kind, its settings, the codebook, the speech-units shards as planned, the data choice and the
steps; ``_shared/vocoders/current-<codebook>.json`` then names it (``storage/vocoder_store.py``). A killed run
resumes from its newest checkpoint; a rerun with nothing new finds the vocoder finished and writes nothing.
It runs in im2sp-pipeline after unitize-speech, and after retokenize-images has re-unitized the speech for a new
speech codebook (``im2sp.codebook.updated``, kind ``speech``): evaluate-im2sp then speaks with it.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.config import PipelineConfig, trainable_vocoders
from flows.sharded import manifest_jobs
from storage.errors import ConfigError, MissingInputError, StaleInputError
from storage.kinds import SHARED, SPEECH_UNITS
from storage.kinds import VOCODERS as VOCODERS_KIND
from storage.lineage import InputShard, check_inputs
from storage.shard_plan import split_of
from storage.versions import StoreVersion, current_version
from storage.vocoder_store import publish_vocoder
from tasks.speech_codebook import current_speech_codebook
from tasks.vocoder_training import (
    READER,
    VocoderPlan,
    VocoderTrainResult,
    sample_preview,
    train_vocoder_task,
    vocoder_settings,
)


def vocoder_plan(config: PipelineConfig) -> VocoderPlan:
    """What train-vocoder would learn now: the current speech codebook, each dataset's current speech units.

    Raises:
        ConfigError: The configured kind cannot be trained.
        MissingInputError: No speech codebook or speech units yet.
        StaleInputError: A dataset's current speech units are of another codebook than the current one.
    """
    section = config.vocoder_training
    if section.kind not in trainable_vocoders():
        raise ConfigError(
            f"vocoder_training.kind: {section.kind!r} cannot be trained; trainable: {', '.join(trainable_vocoders())}"
        )
    settings = vocoder_settings(section.kind, section.settings)
    store = config.store.open()
    found = current_speech_codebook(store)
    if found is None:
        raise MissingInputError("no speech codebook yet: run learn-speech-codebook first")
    codebook_id, centroids, _ = found
    inputs: list[tuple[str, InputShard]] = []
    manifests, roots = {}, {}
    for dataset, spec in config.selected(section.datasets).items():
        units = current_version(store, dataset, SPEECH_UNITS)
        if units is None:
            raise MissingInputError(f"dataset {dataset!r} has no speech units yet; run unitize-speech first")
        made = units.info()["produced_by"]
        if made.get("codebook") != codebook_id:
            raise StaleInputError(
                f"{dataset}: the current speech units are of codebook {made.get('codebook')}, the current speech "
                f"codebook is {codebook_id}; rerun unitize-speech, then {READER}"
            )
        manifests[dataset], jobs, _ = manifest_jobs(store, dataset, "speech")
        roots[dataset] = str(spec.root)
        inputs += [
            (dataset, InputShard(SPEECH_UNITS, units.version, job.shard_id, job.input_fingerprint))
            for job in jobs
            if split_of(job.shard_id) in section.splits
        ]
    if not inputs:
        raise MissingInputError(f"no speech-units shards of splits {', '.join(section.splits)} to learn a vocoder from")
    return VocoderPlan(
        section.kind,
        settings,
        codebook_id,
        len(centroids),
        tuple(inputs),
        manifests,
        roots,
        section.max_utterances,
        section.steps,
        section.seed,
        section.checkpoint_every,
    )


def _loss_and_spectrograms(history: list[dict[str, float]], preview: dict[str, Any] | None) -> bytes:
    """PNG: the loss curve, and (when there is a preview) the reference and resynthesized log-mel side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if preview else 1
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.2), dpi=100, squeeze=False)
    curve = axes[0][0]
    curve.plot([row["step"] for row in history], [row["loss"] for row in history], color="#2563eb")
    curve.set_xlabel("step")
    curve.set_ylabel("loss")
    curve.set_title("train-vocoder loss")
    if preview:
        for axis, (title, mel) in zip(
            axes[0][1:], (("recording", preview["reference"]), ("from units", preview["resynthesized"])), strict=True
        ):
            axis.imshow(mel.T, origin="lower", aspect="auto", cmap="magma")
            axis.set_title(f"{title}: log-mel")
            axis.set_xlabel("frame (50 Hz)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


@flow(name="train-vocoder")
def train_vocoder_flow(config: PipelineConfig) -> VocoderTrainResult:
    """Learn (or find learned) the unit vocoder of the current speech codebook and make it that codebook's vocoder."""
    logger = get_run_logger()
    store_ref = config.store.ref()
    store = store_ref.open()
    plan = vocoder_plan(config)
    by_dataset: dict[str, list[InputShard]] = {}
    for dataset, expected in plan.inputs:
        by_dataset.setdefault(dataset, []).append(expected)
    for dataset, expected_shards in by_dataset.items():  # every input as planned before any work starts
        check_inputs(store, dataset, expected_shards, READER)
    result = train_vocoder_task(store_ref, plan, config.device)
    version = StoreVersion(store, SHARED, VOCODERS_KIND, result.version)
    switched = publish_vocoder(version, plan.codebook_id)
    if not result.trained:
        logger.info(
            "vocoder %s for speech codebook %s is up to date → %s", result.version, plan.codebook_id, result.url
        )
        return result
    logger.info(
        "vocoder %s (%s) for speech codebook %s: %d steps (resumed from %d) on %d utterances, %d left out%s → %s",
        result.version,
        plan.kind,
        plan.codebook_id,
        result.steps,
        result.resumed_from,
        result.utterances,
        len(result.rejected),
        "; now the codebook's vocoder" if switched else "",
        result.url,
    )
    preview = sample_preview(store, plan, version, config.device)
    if result.history:
        create_table_artifact(
            key="train-vocoder-metrics",
            table=result.history[:: max(1, len(result.history) // 200)],
            description=f"Vocoder {result.version}",
        )
    picture = base64.b64encode(_loss_and_spectrograms(result.history, preview)).decode()
    listen = f"\n\nListen: `{store.url_of(preview['wav_key'])}` ({preview['key']})" if preview else ""
    left_out = "".join(f"\n- {key}: {why}" for key, why in list(result.rejected.items())[:10])
    create_markdown_artifact(
        key="train-vocoder-summary",
        markdown=(
            f"# train-vocoder {result.version}\n\n{plan.kind} for speech codebook {plan.codebook_id} (K = "
            f"{plan.clusters}): {result.steps} steps on {result.utterances} utterances; files in `{result.url}`."
            f"\n\n![loss and spectrograms](data:image/png;base64,{picture}){listen}\n\n"
            f"Left out: {len(result.rejected)}{left_out}\n"
        ),
        description="Loss curve, a recording's log-mel against the vocoder's from its units, a WAV to listen to",
    )
    return result
