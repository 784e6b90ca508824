"""Evaluating an Im2Sp model on one dataset's test images: the store's side (images, captions, WAVs) of evaluation.

The test images are those of the training shards' test split. The model is an Im2Sp model kind
(:mod:`im2sp_models.im2sp_kinds`), fed what it reads (:mod:`tasks.eval_inputs`: the stored image-unit grids,
or the image files); per image it generates speech units, scored against the reference utterances' units
(:mod:`im2sp_models.evaluation`). Turning units into speech needs a
unit vocoder (``unit-hifigan``): its WAVs are kept in the store, transcribed and scored like the topline; without
one that row is reported as not configured. The topline transcribes each image's first reference utterance with
the configured ASR and scores the transcripts against all the image's text captions.

The WAVs of one evaluation go to a folder of their own,
``reports/evaluate-im2sp/<dataset>/<model kind>-<fingerprint>/``, the fingerprint hashing what made them (the
model's fingerprint, its generation settings, the vocoder's fingerprint, the training-shards version, the split
and the evaluated image ids): two models, checkpoints or image sets never share a folder, so none overwrites
another's WAVs or leaves a mix. ``evaluation.json``, written after the WAVs, records what made them; a folder
that has it is complete, and evaluating the same again writes nothing there.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task

from im2sp_models.evaluation import examples, generate, score_generated_speech, score_units, topline
from storage.hashing import fingerprint
from storage.kinds import MANIFESTS, TRAINING_SHARDS
from storage.manifests import ok_rows
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from tasks.eval_inputs import check_image_units, generate_units, model_inputs, split_images
from tasks.models import AsrRef, Im2SpModelRef, VocoderRef, asr_for, im2sp_model_for, vocoder_for

__all__ = [
    "EvalModels",
    "EvalResult",
    "EvalSettings",
    "evaluate_dataset",
    "evaluate_dataset_task",
    "generate",
    "wav_folder",
]


@dataclass(frozen=True)
class EvalSettings:
    """How to generate and what to score (``beams``, ``max_units`` None: the model kind's own)."""

    split: str = "test"
    max_images: int | None = None
    beams: int | None = None
    max_units: int | None = None
    batch_size: int = 8


@dataclass(frozen=True)
class EvalModels:
    """The models evaluation runs: the Im2Sp model, the ASR and the unit vocoder (None: not configured).

    Attributes:
        model: The Im2Sp model kind and its local checkpoint.
        asr: The speech recognizer that transcribes reference and generated speech.
        vocoder: The unit vocoder that turns generated units into speech.
    """

    model: Im2SpModelRef
    asr: AsrRef | None = None
    vocoder: VocoderRef | None = None


@dataclass
class EvalResult:
    """Scores of one dataset (small: returned by the task)."""

    dataset: str
    model: str
    images: int
    unit_error_rate: float
    generated_length: float
    reference_length: float
    topline: dict[str, float | None] | None
    topline_note: str
    examples: list[dict[str, Any]] = field(default_factory=list)
    generated: dict[str, float | None] | None = None
    generated_note: str = "not configured: no unit vocoder checkpoint (evaluation.vocoder_checkpoint)"
    wavs: str = ""
    #: The dataset's source kind (``coco``, ``flickr8k``): which of the paper's figures applies.
    dataset_kind: str = ""


def evaluate_dataset(
    store: Store, root: Path, dataset: str, training_version: str, models: EvalModels, settings: EvalSettings
) -> EvalResult:
    """Generate for the dataset's test images and score units; transcribe the reference speech for the topline."""
    model = im2sp_model_for(models.model)
    check_image_units(model, store, dataset, training_version)
    asr, vocoder = models.asr, models.vocoder
    images = split_images(store, dataset, training_version, settings.split)
    listed = list(images)[: settings.max_images] if settings.max_images else list(images)
    manifests_id = StoreVersion(store, dataset, TRAINING_SHARDS, training_version).info()["produced_by"]["manifests"]
    manifests = StoreVersion(store, dataset, MANIFESTS, manifests_id)
    inputs, unreadable = model_inputs(model, {i: images[i]["grid"] for i in listed}, manifests, root)
    chosen = list(inputs)
    generated = generate_units(
        model, inputs, beams=settings.beams, max_units=settings.max_units, batch_size=settings.batch_size
    )
    units = score_units(generated, {i: [u for _, u in images[i]["refs"]] for i in chosen})
    captions: dict[str, list[str]] = defaultdict(list)
    for row in ok_rows(manifests, "captions", ["image_id", "text"]).values():
        captions[str(row["image_id"])].append(str(row["text"]))
    scorable = [i for i in chosen if captions[i]]  # images whose captions all failed the manifests: unscored
    keys = {i: images[i]["refs"][0][0] for i in scorable}
    scores, note, transcripts = _topline(manifests, root, captions, keys, asr)
    speech = {i: generated[i] for i in scorable}
    made_by = {
        "model": {"kind": models.model.name, "checkpoint": models.model.checkpoint, "fingerprint": model.fingerprint},
        "beams": settings.beams,
        "max_units": settings.max_units,
        "training_shards": training_version,
        "split": settings.split,
    }
    generated_scores, generated_note, spoken, wavs = _generated_speech(
        store, dataset, captions, speech, asr, vocoder, made_by
    )
    if unreadable:
        generated_note += f"; {len(unreadable)} test images unreadable now, not evaluated ({unreadable[0]})"
    return EvalResult(
        dataset,
        models.model.name,
        len(chosen),
        units.unit_error_rate,
        units.generated_length,
        units.reference_length,
        scores,
        note,
        examples(chosen[:5], captions, generated, transcripts, spoken),
        generated_scores,
        generated_note,
        wavs,
    )


def _topline(
    manifests: StoreVersion, root: Path, captions: dict[str, list[str]], keys: dict[str, str], asr: AsrRef | None
) -> tuple[dict[str, float | None] | None, str, dict[str, str]]:
    """The reference speech's scores (``keys``: scorable image → its first utterance), a note, the transcripts."""
    if asr is None:
        return None, "not configured: no ASR checkpoint", {}
    if not keys:
        return None, "no test image with captions to score against", {}
    recognizer = asr_for(asr)
    paths = {key: row["path"] for key, row in ok_rows(manifests, "utterances", ["path"]).items()}
    return topline(recognizer, captions, root, paths, keys)


def _generated_speech(
    store: Store,
    dataset: str,
    captions: dict[str, list[str]],
    units: dict[str, np.ndarray],
    asr: AsrRef | None,
    vocoder: VocoderRef | None,
    made_by: dict[str, Any],
) -> tuple[dict[str, float | None] | None, str, dict[str, str], str]:
    """The generated speech's scores (``units``: of the scorable images), a note, the transcripts, the WAVs' key.

    ``made_by`` says what generated ``units`` (see :func:`wav_folder`).
    """
    if not units:
        return None, "no test image with captions to score against", {}, ""
    if vocoder is None or asr is None:
        return None, "not configured: " + ("no unit vocoder checkpoint" if vocoder is None else "no ASR"), {}, ""
    synthesizer = vocoder_for(vocoder)
    record = {**made_by, "vocoder": {"name": vocoder.name, "fingerprint": synthesizer.fingerprint}, "images": [*units]}
    wavs = wav_folder(dataset, record)
    # complete (its record is written last): these very WAVs are there already, nothing to write
    done = all(store.exists(f"{wavs}/{name}") for name in ["evaluation.json", *(f"{i}.wav" for i in units)])

    def keep(image_id: str, wav: bytes) -> None:
        if not done:
            store.write_bytes(f"{wavs}/{image_id}.wav", wav)

    scored, spoken = score_generated_speech(synthesizer, asr_for(asr), captions, units, keep)
    if not done:
        store.write_json(f"{wavs}/evaluation.json", record)  # last: the folder is whole
    note = f"WAVs in {store.url_of(wavs)}; " + "; ".join(f"{k} skipped" for k in scored.skipped)
    return scored.scores, note, spoken, wavs


def wav_folder(dataset: str, record: dict[str, Any]) -> str:
    """The store folder of one evaluation's WAVs: ``reports/evaluate-im2sp/<dataset>/<model kind>-<fingerprint>``.

    Args:
        dataset: The dataset evaluated.
        record: What made the WAVs: ``model`` (``kind``, ``checkpoint``, ``fingerprint``), ``vocoder`` (``name``,
            ``fingerprint``), ``beams``, ``max_units``, ``training_shards``, ``split``, ``images`` (ids, in order).
            The checkpoint's path is left out of the fingerprint: the model's fingerprint names its bytes.
    """
    model = record["model"]
    identity = {**record, "model": {"kind": model["kind"], "fingerprint": model["fingerprint"]}}
    return f"reports/evaluate-im2sp/{dataset}/{model['kind']}-{fingerprint(identity)}"


@task(name="evaluate-dataset", task_run_name="evaluate-{dataset}")
def evaluate_dataset_task(
    store: StoreRef, root: str, dataset: str, training_version: str, models: EvalModels, settings: EvalSettings
) -> EvalResult:
    """Prefect task around :func:`evaluate_dataset`."""
    return evaluate_dataset(store.open(), Path(root), dataset, training_version, models, settings)
