"""Evaluating an Im2Sp model on one dataset's test images: the store's side (images, captions, WAVs) of evaluation.

The test images are those of the training shards' test split. The model is an Im2Sp model kind
(:mod:`im2sp_models.im2sp_kinds`), fed what it reads (:mod:`tasks.eval_inputs`: the stored image-unit grids,
or the image files); per image it generates speech units, scored against the reference utterances' units
(:mod:`im2sp_models.evaluation`). The topline transcribes every reference utterance of each image with the
configured ASR; the caption metrics score each image's first utterance's transcript against all the image's
text captions, and the word error rate covers every utterance, each against its own caption (corpus-level, with
the count of utterances it covers). Turning units into speech needs a unit vocoder: the configured one, else
the store's for the speech codebook that made the training shards' units (:mod:`tasks.eval_lineage`). With
one, the resynthesis row voices every reference utterance's stored full-rate units and the generated row the
model's units (:mod:`tasks.eval_speech`), both kept as WAVs, transcribed and scored like the topline (the
resynthesis also by WER over every utterance); without one both rows say why ("not configured: no vocoder for
speech codebook …").

The generated WAVs of one evaluation go to a folder of their own,
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

from im2sp_models.evaluation import examples, first_transcripts, generate, score_units, topline
from im2sp_models.word_error import word_error_rate
from storage.hashing import fingerprint
from storage.kinds import MANIFESTS, TRAINING_SHARDS
from storage.manifests import ok_rows
from storage.store import Store, StoreRef
from storage.versions import StoreVersion
from tasks.eval_inputs import check_image_units, generate_units, model_inputs, split_images
from tasks.eval_lineage import SpeechLineage, VocoderChoice, choose_vocoder, reference_units, speech_lineage
from tasks.eval_speech import SpokenRow, picture, resynthesis_folder, speak_row
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
        vocoder: The configured unit vocoder (``evaluation.vocoder_checkpoint``); None: the store's vocoder for
            the speech codebook of the evaluated units, when train-vocoder published one.
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
    #: The reference utterances' stored units → vocoder → ASR: scores, note, WAV folder (store key).
    resynthesis: dict[str, float | None] | None = None
    resynthesis_note: str = "not configured"
    resynthesis_wavs: str = ""
    #: ASR word error rate over every reference utterance of the scored images, each against its own caption
    #: (None: not measured), and how many utterances it covers.
    topline_wer: float | None = None
    resynthesis_wer: float | None = None
    topline_wer_utterances: int = 0
    resynthesis_wer_utterances: int = 0
    #: What was evaluated: ``model`` (kind, checkpoint, fingerprint), generation settings, ``training_shards``,
    #: ``speech_units`` and ``vocoder`` (kind, codebook, store version or checkpoint, fingerprint).
    made_by: dict[str, Any] = field(default_factory=dict)
    #: The store key of the log-mel picture of one image's speech ("" when none), and the WAVs it shows.
    picture: str = ""
    picture_wavs: dict[str, str] = field(default_factory=dict)


def evaluate_dataset(
    store: Store, root: Path, dataset: str, training_version: str, models: EvalModels, settings: EvalSettings
) -> EvalResult:
    """Generate for the test images and score units; score the reference, resynthesized and generated speech."""
    model = im2sp_model_for(models.model)
    check_image_units(model, store, dataset, training_version)
    lineage = speech_lineage(store, dataset, training_version)
    vocoder = choose_vocoder(store, lineage, models.vocoder, model_units=model.speech_units, device=models.model.device)
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
    utterances = {i: [key for key, _ in images[i]["refs"]] for i in scorable}  # the first: caption metrics'
    texts = {key: images[i]["texts"][key] for i in scorable for key in utterances[i]}  # each one's own: its WER
    paths = {key: row["path"] for key, row in ok_rows(manifests, "utterances", ["path"]).items()}
    scores, note, heard = _topline(root, captions, paths, utterances, models.asr)
    transcripts = first_transcripts(heard, {i: keys[0] for i, keys in utterances.items()})
    made_by = {
        "model": {"kind": models.model.name, "checkpoint": models.model.checkpoint, "fingerprint": model.fingerprint},
        "beams": settings.beams,
        "max_units": settings.max_units,
        "training_shards": training_version,
        "split": settings.split,
    }
    references = {i: [(key, images[i]["shards"][key], trained) for key, trained in images[i]["refs"]] for i in scorable}
    speaking = _Speaking(store, dataset, lineage, models.asr, vocoder, captions, made_by)
    resynthesized, spoken = speaking.rows(references, {i: generated[i] for i in scorable})
    generated_note = spoken.note
    if unreadable:
        generated_note += f"; {len(unreadable)} test images unreadable now, not evaluated ({unreadable[0]})"
    result = EvalResult(
        dataset,
        models.model.name,
        len(chosen),
        units.unit_error_rate,
        units.generated_length,
        units.reference_length,
        scores,
        note,
        examples(chosen[:5], captions, generated, transcripts, spoken.per_image, resynthesized.per_image),
        spoken.scores,
        generated_note,
        spoken.wavs,
        resynthesis=resynthesized.scores,
        resynthesis_note=resynthesized.note,
        resynthesis_wavs=resynthesized.wavs,
        topline_wer=word_error_rate(heard, texts),
        resynthesis_wer=word_error_rate(resynthesized.transcripts, texts),
        topline_wer_utterances=len(heard),
        resynthesis_wer_utterances=len(resynthesized.transcripts),
        made_by={**made_by, "speech_units": lineage.units_version, "vocoder": speaking.vocoder_record},
    )
    if scorable and resynthesized.pictured and spoken.wavs:
        first = utterances[scorable[0]][0]
        _picture(store, root, result, (scorable[0], first), paths.get(first), (resynthesized, spoken))
    return result


def _topline(
    root: Path,
    captions: dict[str, list[str]],
    paths: dict[str, str],
    utterances: dict[str, list[str]],
    asr: AsrRef | None,
) -> tuple[dict[str, float | None] | None, str, dict[str, str]]:
    """The reference speech's scores (``utterances``: scorable image → its utterances), a note, every transcript."""
    if asr is None:
        return None, "not configured: no ASR checkpoint", {}
    if not utterances:
        return None, "no test image with captions to score against", {}
    return topline(asr_for(asr), captions, root, paths, utterances)


class _Speaking:
    """The spoken rows of one dataset: resynthesis and generated speech, through one vocoder and the ASR."""

    def __init__(
        self,
        store: Store,
        dataset: str,
        lineage: SpeechLineage,
        asr: AsrRef | None,
        vocoder: VocoderChoice,
        captions: dict[str, list[str]],
        made_by: dict[str, Any],
    ) -> None:
        self.store, self.dataset, self.lineage, self.captions, self.made_by = store, dataset, lineage, captions, made_by
        self.asr, self.vocoder = asr, vocoder
        #: What speaks, for the report: the choice's source, with the loaded vocoder's fingerprint.
        self.vocoder_record: dict[str, Any] = dict(vocoder.source)

    def rows(
        self, references: dict[str, list[tuple[str, str, np.ndarray]]], units: dict[str, np.ndarray]
    ) -> tuple[SpokenRow, SpokenRow]:
        """The resynthesis row (``references``: image → its utterances' keys, shards, trained units), the generated.

        The resynthesis voices every utterance (the WER covers them all); its caption metrics score each image's
        first, as the topline's do.
        """
        ref, asr = self.vocoder.ref, self.asr
        if not units or ref is None or asr is None:
            why = "not configured: no ASR" if asr is None else self.vocoder.note
            unspoken = SpokenRow(None, "no test image with captions to score against" if not units else why, {})
            return unspoken, unspoken
        synthesizer = vocoder_for(ref)
        named = {"name": ref.name, "fingerprint": synthesizer.fingerprint}
        self.vocoder_record["fingerprint"] = synthesizer.fingerprint
        models = (synthesizer, asr_for(asr))
        pictured = next(iter(units))
        refs = {key: (shard, trained) for utterances in references.values() for key, shard, trained in utterances}
        full = reference_units(self.store, self.dataset, self.lineage, refs)
        record = {
            "vocoder": named,
            "speech_units": self.lineage.units_version,
            "training_shards": self.made_by["training_shards"],
            "split": self.made_by["split"],
            "utterances": {i: [key for key, _, _ in utterances] for i, utterances in references.items()},
        }
        firsts = {i: utterances[0][0] for i, utterances in references.items()}
        resynthesized = speak_row(
            self.store,
            resynthesis_folder(self.dataset, record),
            record,
            models,
            self.captions,
            full,
            deduplicated=False,
            pictured=firsts[pictured],
            firsts=firsts,
        )
        record = {**self.made_by, "vocoder": named, "images": [*units]}
        spoken = speak_row(
            self.store,
            wav_folder(self.dataset, record),
            record,
            models,
            self.captions,
            units,
            deduplicated=True,
            pictured=pictured,
        )
        if self.vocoder.note:  # a remark on the vocoder chosen (its unit table's size)
            resynthesized.note += f"; {self.vocoder.note}"
            spoken.note += f"; {self.vocoder.note}"
        return resynthesized, spoken


def _picture(
    store: Store,
    root: Path,
    result: EvalResult,
    pictured: tuple[str, str],
    path: str | None,
    rows: tuple[SpokenRow, SpokenRow],
) -> None:
    """Keep the picture of one image's speech (``pictured``: the image and its first utterance) and name its WAVs."""
    image_id, utterance = pictured
    resynthesized, spoken = rows
    if path is None:
        return
    try:
        recording = (root / path).read_bytes()
    except OSError:  # the topline names an unreadable recording; the picture is left out
        return
    recordings = {
        "reference recording": recording,
        "resynthesized (stored units)": resynthesized.pictured,
        "generated": spoken.pictured,
    }
    result.picture = picture(store, result.dataset, image_id, recordings, [path, resynthesized.wavs, spoken.wavs])
    result.picture_wavs = {
        "image": image_id,
        "reference": str(root / path),
        "resynthesized": store.url_of(f"{resynthesized.wavs}/{utterance}.wav"),
        "generated": store.url_of(f"{spoken.wavs}/{image_id}.wav"),
    }


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
