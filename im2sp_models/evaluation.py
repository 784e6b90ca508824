"""Evaluating the unit GiT, free of any store: generation, unit scores, and speech scored as captions.

Generated speech units are scored against an image's reference utterances by unit error rate (edit distance to
the closest deduplicated reference, over its length). The topline transcribes every reference utterance (the
recorded speech) of each image with an ASR model, for the word error rate; the caption metrics score one
transcript per image, its first utterance's, against the image's text captions (BLEU, METEOR, ROUGE-L, CIDEr:
:mod:`im2sp_models.caption_metrics`). Generated units become speech through a unit vocoder and are transcribed
and scored the same way. Which images, captions and files is :mod:`tasks.evaluate`'s.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from im2sp_models.audio import load_audio
from im2sp_models.caption_metrics import CaptionScores, score_captions, unit_error_rate
from im2sp_models.errors import ItemRejected
from im2sp_models.unit_git import BOS_ID, EOS_ID, PAD_ID, ids_to_speech_units

#: Fewest samples the ASR hears (0.1 s at 16 kHz): shorter speech is padded with silence.
_MIN_HEARD = 1600


@dataclass(frozen=True)
class UnitScores:
    """Unit-level scores over a set of images: mean unit error rate and mean lengths."""

    unit_error_rate: float
    generated_length: float
    reference_length: float


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


def generate_all(
    model: Any, grids: Mapping[str, np.ndarray], *, beams: int, max_units: int, batch_size: int
) -> dict[str, np.ndarray]:
    """Speech units for every grid (by id, in order), generated ``batch_size`` grids at a time."""
    ids = list(grids)
    generated: dict[str, np.ndarray] = {}
    for first in range(0, len(ids), batch_size):
        batch = ids[first : first + batch_size]
        produced = generate(model, np.stack([grids[i] for i in batch]), beams=beams, max_units=max_units)
        generated.update(zip(batch, produced, strict=True))
    return generated


def score_units(generated: Mapping[str, np.ndarray], references: Mapping[str, Sequence[np.ndarray]]) -> UnitScores:
    """Mean unit error rate of each image's units against its references, and the mean lengths of both.

    With no images: a NaN rate and zero lengths.
    """
    ids = list(generated)
    rates = [unit_error_rate(generated[i], list(references[i])) for i in ids]
    return UnitScores(
        float(np.mean(rates)) if rates else float("nan"),
        float(np.mean([len(generated[i]) for i in ids])) if ids else 0.0,
        float(np.mean([len(u) for i in ids for u in references[i]])) if ids else 0.0,
    )


def first_transcripts(transcripts: Mapping[str, str], firsts: Mapping[str, str]) -> dict[str, str]:
    """Each image's transcript that the caption metrics score: its first utterance's, where there is one.

    Args:
        transcripts: Utterance key → transcript.
        firsts: Image id → the key of its first utterance.
    """
    return {image_id: transcripts[key] for image_id, key in firsts.items() if key in transcripts}


def topline(
    recognizer: Any,
    captions: Mapping[str, list[str]],
    root: Path,
    paths: Mapping[str, str],
    utterances: Mapping[str, Sequence[str]],
) -> tuple[dict[str, float | None] | None, str, dict[str, str]]:
    """Transcribe every reference utterance of each image; score each image's first against its captions.

    Args:
        recognizer: An ASR model (``transcribe(list of waveforms) -> list of texts``).
        captions: Each image's text captions.
        root: The folder the utterance paths are relative to.
        paths: Utterance key → audio path under ``root``.
        utterances: Image id → the keys of its utterances (in scoring order); every one is transcribed (the
            word error rate covers them all), the first is the image's transcript for the caption metrics.

    Returns:
        The scores (None when no first utterance could be read), a note on anything skipped or unreadable, and
        the transcripts by utterance key.
    """
    transcripts: dict[str, str] = {}
    unreadable = []
    for key in (key for keys in utterances.values() for key in keys):
        try:
            waveform = load_audio((root / paths[key]).read_bytes(), min_samples=1)
        except (ItemRejected, OSError, KeyError) as error:
            unreadable.append(f"{key}: {error}")
            continue
        transcripts[key] = recognizer.transcribe([waveform])[0]
    scored = first_transcripts(transcripts, {i: keys[0] for i, keys in utterances.items() if keys})
    scores, note = None, ""
    if scored:
        caption_scores = score_captions({i: captions[i] for i in scored}, scored)
        scores = caption_scores.scores
        note = "; ".join(f"{k} skipped: {v}" for k, v in caption_scores.skipped.items())
    if unreadable:
        note += f"; {len(unreadable)} reference utterances unreadable now, not scored ({unreadable[0]})"
    return scores, note, transcripts


def speak_and_transcribe(
    synthesizer: Any,
    recognizer: Any,
    units: Mapping[str, np.ndarray],
    keep: Callable[[str, bytes], None],
    *,
    deduplicated: bool = True,
) -> dict[str, str]:
    """Turn each entry's units into speech (16-bit WAV, handed to ``keep`` with its key) and transcribe it.

    ``deduplicated``: the units are deduplicated (generated ones; durations are the vocoder's to predict), or
    full rate (a reference utterance's stored units, resynthesized). Empty speech is heard as 0.1 s of silence,
    and shorter speech is padded with silence to 0.1 s (wav2vec2's convolutions refuse fewer than 400
    samples), so the ASR still gives a (likely empty) transcript.
    """
    spoken = {}
    for key, sequence in units.items():
        buffer = io.BytesIO()
        waveform = synthesizer.synthesize(sequence, deduplicated=deduplicated)
        soundfile.write(buffer, waveform, synthesizer.sample_rate, subtype="PCM_16", format="WAV")
        keep(key, buffer.getvalue())
        audible = load_audio(buffer.getvalue(), min_samples=1) if waveform.size else np.zeros(0, np.float32)
        audible = np.pad(audible, (0, max(0, _MIN_HEARD - audible.size)))
        spoken[key] = recognizer.transcribe([audible])[0]
    return spoken


def score_generated_speech(
    synthesizer: Any,
    recognizer: Any,
    captions: Mapping[str, list[str]],
    units: Mapping[str, np.ndarray],
    keep: Callable[[str, bytes], None],
    *,
    deduplicated: bool = True,
    firsts: Mapping[str, str] | None = None,
) -> tuple[CaptionScores, dict[str, str]]:
    """Speak and transcribe all ``units`` (:func:`speak_and_transcribe`), score one per image against its captions.

    Args:
        synthesizer: The unit vocoder.
        recognizer: The ASR model.
        captions: Each image's text captions.
        units: Key → the units to voice: by image id, or (with ``firsts``) by utterance key.
        keep: Called with each key and its WAV bytes.
        deduplicated: Whether ``units`` are deduplicated.
        firsts: Image id → the key of ``units`` whose transcript the caption metrics score for it (the image's
            first utterance); None: ``units`` are keyed by image id.

    Returns:
        The caption scores and the transcripts by the keys of ``units``.
    """
    spoken = speak_and_transcribe(synthesizer, recognizer, units, keep, deduplicated=deduplicated)
    scored = spoken if firsts is None else first_transcripts(spoken, firsts)
    return score_captions({i: captions[i] for i in scored}, scored), spoken


def examples(
    image_ids: Sequence[str],
    captions: Mapping[str, list[str]],
    generated: Mapping[str, np.ndarray],
    transcripts: Mapping[str, str],
    spoken: Mapping[str, str],
    resynthesized: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """A few rows to show: the captions, the transcripts (``-`` when none) and the first generated units.

    ``resynthesized`` (the resynthesized reference speech's transcripts), when given, adds its column.
    """
    rows = []
    for image_id in image_ids:
        row = {
            "image_id": image_id,
            "references": captions[image_id][:3],
            "reference_speech_asr": transcripts.get(image_id, "-"),
            "generated_speech_asr": spoken.get(image_id, "-"),
            "generated_units": " ".join(str(u) for u in generated[image_id][:20]),
        }
        if resynthesized is not None:
            row["resynthesized_speech_asr"] = resynthesized.get(image_id, "-")
        rows.append(row)
    return rows
