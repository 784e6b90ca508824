"""Evaluating the unit GiT on one dataset's test images: generation, unit metrics, the ASR topline.

Per test image (from the training shards of the test split, so exactly the stored image units): the model
generates speech units (greedy, or beam search), scored against the image's reference utterances by unit
error rate (edit distance to the closest deduplicated reference, over its length). Turning units into
speech needs a unit vocoder (``unit-hifigan``): its WAVs are kept under ``reports/evaluate-im2sp/`` in the
store, transcribed and scored like the topline; without one that row is reported as not configured. The
topline transcribes each image's first reference utterance (the recorded speech) with the configured ASR
and scores the transcripts against all the image's text captions (BLEU, METEOR, ROUGE-L, CIDEr).
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from prefect import task

from im2sp_models.audio import load_audio
from im2sp_models.caption_metrics import score_captions, unit_error_rate
from im2sp_models.errors import ItemRejected
from im2sp_models.unit_git import BOS_ID, EOS_ID, PAD_ID, ids_to_speech_units, load_model
from storage.kinds import MANIFESTS, TRAINING_SHARDS
from storage.manifests import ok_rows
from storage.reader import iter_webdataset
from storage.store import Store
from storage.versions import StoreVersion
from tasks.models import AsrRef, VocoderRef, asr_for, vocoder_for


@dataclass(frozen=True)
class EvalSettings:
    """How to generate and what to score."""

    split: str = "test"
    max_images: int | None = None
    beams: int = 1
    max_units: int = 512
    batch_size: int = 8


@dataclass
class EvalResult:
    """Scores of one dataset (small: returned by the task)."""

    dataset: str
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


def _test_images(store: Store, dataset: str, version_id: str, split: str) -> dict[str, dict[str, Any]]:
    version = StoreVersion(store, dataset, TRAINING_SHARDS, version_id)
    images: dict[str, dict[str, Any]] = {}
    for shard in sorted(s for s in version.committed() if s.split("-")[0] == split):
        for key, fields in iter_webdataset(version, shard):
            meta = json.loads(fields["json"])
            grid = np.load(io.BytesIO(fields["image.npy"]))
            entry = images.setdefault(meta["image_id"], {"grid": grid, "refs": []})
            entry["refs"].append((key, np.load(io.BytesIO(fields["units.npy"]))))
    return dict(sorted(images.items()))


def generate(model: Any, grids: np.ndarray, *, beams: int, max_units: int) -> list[np.ndarray]:
    """Speech units for each ``(32, 32)`` grid: greedy (``beams == 1``) or beam search, up to ``max_units``."""
    import torch

    pixels = torch.from_numpy(np.asarray(grids, dtype=np.float32))[:, None]
    start = torch.full((len(grids), 1), BOS_ID, dtype=torch.long)
    with torch.no_grad():
        out = model.generate(
            pixel_values=pixels.to(model.device),
            input_ids=start.to(model.device),
            max_new_tokens=max_units + 1,
            num_beams=beams,
            do_sample=False,
            eos_token_id=EOS_ID,
            pad_token_id=PAD_ID,
        )
    return [ids_to_speech_units(row.cpu().numpy()) for row in out]


def evaluate_dataset(
    store: Store,
    root: Path,
    dataset: str,
    training_version: str,
    model_folder: Path,
    settings: EvalSettings,
    asr: AsrRef | None,
    vocoder: VocoderRef | None = None,
) -> EvalResult:
    """Generate for the dataset's test images and score units; transcribe the reference speech for the topline."""
    model = load_model(model_folder)
    images = _test_images(store, dataset, training_version, settings.split)
    chosen = list(images)[: settings.max_images] if settings.max_images else list(images)
    generated: dict[str, np.ndarray] = {}
    for first in range(0, len(chosen), settings.batch_size):
        batch = chosen[first : first + settings.batch_size]
        grids = np.stack([images[i]["grid"] for i in batch])
        produced = generate(model, grids, beams=settings.beams, max_units=settings.max_units)
        generated.update(zip(batch, produced, strict=True))
    rates = [unit_error_rate(generated[i], [u for _, u in images[i]["refs"]]) for i in chosen]
    manifests_id = StoreVersion(store, dataset, TRAINING_SHARDS, training_version).info()["produced_by"]["manifests"]
    manifests = StoreVersion(store, dataset, MANIFESTS, manifests_id)
    captions: dict[str, list[str]] = defaultdict(list)
    for row in ok_rows(manifests, "captions", ["image_id", "text"]).values():
        captions[str(row["image_id"])].append(str(row["text"]))
    scorable = [i for i in chosen if captions[i]]  # images whose captions all failed the manifests: unscored
    topline, note, transcripts = None, "", {}
    if asr is None:
        note = "not configured: no ASR checkpoint"
    elif not scorable:
        note = "no test image with captions to score against"
    else:
        recognizer = asr_for(asr)
        utterances = ok_rows(manifests, "utterances", ["path"])
        unreadable = []
        for image_id in scorable:
            key = images[image_id]["refs"][0][0]
            try:
                waveform = load_audio((root / utterances[key]["path"]).read_bytes(), min_samples=1)
            except (ItemRejected, OSError, KeyError) as error:
                unreadable.append(f"{key}: {error}")
                continue
            transcripts[image_id] = recognizer.transcribe([waveform])[0]
        if transcripts:
            scored = score_captions({i: captions[i] for i in transcripts}, transcripts)
            topline = scored.scores
            note = "; ".join(f"{k} skipped: {v}" for k, v in scored.skipped.items())
        if unreadable:
            note += f"; {len(unreadable)} reference utterances unreadable now, not scored ({unreadable[0]})"
    spoken, generated_scores, generated_note, wavs = {}, None, "", ""
    if vocoder is None or asr is None or not scorable:
        generated_note = "not configured: " + ("no unit vocoder checkpoint" if vocoder is None else "no ASR")
        generated_note = generated_note if scorable else "no test image with captions to score against"
    else:
        synthesizer, recognizer = vocoder_for(vocoder), asr_for(asr)
        wavs = f"reports/evaluate-im2sp/{dataset}/{synthesizer.fingerprint}"
        for image_id in scorable:
            buffer = io.BytesIO()
            waveform = synthesizer.synthesize(generated[image_id], deduplicated=True)
            soundfile.write(buffer, waveform, synthesizer.sample_rate, subtype="PCM_16", format="WAV")
            store.write_bytes(f"{wavs}/{image_id}.wav", buffer.getvalue())
            audible = load_audio(buffer.getvalue(), min_samples=1) if waveform.size else np.zeros(1600, np.float32)
            spoken[image_id] = recognizer.transcribe([audible])[0]
        scored = score_captions({i: captions[i] for i in scorable}, spoken)
        generated_scores = scored.scores
        generated_note = f"WAVs in {store.url_of(wavs)}; " + "; ".join(f"{k} skipped" for k in scored.skipped)
    examples = [
        {
            "image_id": image_id,
            "references": captions[image_id][:3],
            "reference_speech_asr": transcripts.get(image_id, "-"),
            "generated_speech_asr": spoken.get(image_id, "-"),
            "generated_units": " ".join(str(u) for u in generated[image_id][:20]),
        }
        for image_id in chosen[:5]
    ]
    return EvalResult(
        dataset,
        len(chosen),
        float(np.mean(rates)) if rates else float("nan"),
        float(np.mean([len(generated[i]) for i in chosen])) if chosen else 0.0,
        float(np.mean([len(u) for i in chosen for _, u in images[i]["refs"]])) if chosen else 0.0,
        topline,
        note,
        examples,
        generated_scores,
        generated_note,
        wavs,
    )


@task(name="evaluate-dataset", task_run_name="evaluate-{dataset}")
def evaluate_dataset_task(
    store_url: str,
    storage_options: dict[str, Any] | None,
    root: str,
    dataset: str,
    training_version: str,
    model_folder: str,
    settings: EvalSettings,
    asr: AsrRef | None,
    vocoder: VocoderRef | None,
) -> EvalResult:
    """Prefect task around :func:`evaluate_dataset`."""
    return evaluate_dataset(
        Store(store_url, storage_options),
        Path(root),
        dataset,
        training_version,
        Path(model_folder),
        settings,
        asr,
        vocoder,
    )
