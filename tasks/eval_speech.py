"""The spoken rows of an evaluation: units → vocoder → WAVs kept in the store → ASR → scores; and the picture.

Two rows speak units: the **resynthesis** row voices each scorable image's reference utterance from its stored
full-rate units (what units + vocoder lose, apart from the model), the **generated** row the model's
deduplicated units. Each row's WAVs go to a folder of their own, named by the fingerprint of what made them
(the record written last as ``evaluation.json``): a folder that has it is complete, and evaluating the same
again writes nothing there. Generated speech: ``reports/evaluate-im2sp/<dataset>/<model kind>-<fingerprint>/``
(:func:`tasks.evaluate.wav_folder`); resynthesized speech, which no model made:
``reports/evaluate-im2sp-resynthesis/<dataset>/<vocoder kind>-<fingerprint>/``.

The picture shows one image's reference recording, resynthesis and generated speech as log-mel spectrograms
side by side (:mod:`im2sp_models.spectrogram`), kept once as
``reports/evaluate-im2sp-pictures/<dataset>/<image id>-<fingerprint>.png`` (the fingerprint names the two WAV
folders and the recording), so the flow inlines it without passing arrays between tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from im2sp_models.audio import load_audio
from im2sp_models.errors import ItemRejected
from im2sp_models.evaluation import score_generated_speech
from im2sp_models.spectrogram import log_mel, spectrogram_png
from storage.hashing import fingerprint
from storage.store import Store

#: Where resynthesized reference speech is kept (one folder per dataset and what made it).
RESYNTHESIS_WAVS = "reports/evaluate-im2sp-resynthesis"
#: Where the spectrogram pictures are kept.
PICTURES = "reports/evaluate-im2sp-pictures"
#: The record that completes a WAV folder (written last).
RECORD = "evaluation.json"


@dataclass
class SpokenRow:
    """One spoken row: its scores (None: none), a note, the transcripts, the WAV folder, the pictured WAV."""

    scores: dict[str, float | None] | None
    note: str
    transcripts: dict[str, str]
    wavs: str = ""
    pictured: bytes = b""


def resynthesis_folder(dataset: str, record: dict[str, Any]) -> str:
    """The store folder of one resynthesis's WAVs: ``<RESYNTHESIS_WAVS>/<dataset>/<vocoder kind>-<fingerprint>``.

    Args:
        dataset: The dataset evaluated.
        record: What made the WAVs: ``vocoder`` (``name``, ``fingerprint``), ``speech_units`` (version),
            ``training_shards``, ``split`` and ``utterances`` (image id → utterance key, in order).
    """
    return f"{RESYNTHESIS_WAVS}/{dataset}/{record['vocoder']['name']}-{fingerprint(record)}"


def speak_row(
    store: Store,
    folder: str,
    record: dict[str, Any],
    models: tuple[Any, Any],
    captions: Mapping[str, list[str]],
    units: Mapping[str, np.ndarray],
    *,
    deduplicated: bool,
    pictured: str | None = None,
) -> SpokenRow:
    """Voice each image's units, keep the WAVs in ``folder`` (unless complete already), transcribe and score.

    Args:
        store: The store.
        folder: The row's WAV folder (named by ``record``).
        record: What made the WAVs, written last as ``evaluation.json``.
        models: The loaded vocoder and ASR.
        captions: Each image's text captions.
        units: Image id → the units to voice (deduplicated or full rate, as ``deduplicated`` says).
        deduplicated: Whether ``units`` are deduplicated.
        pictured: The image whose WAV bytes come back in ``SpokenRow.pictured`` (for the picture).
    """
    synthesizer, recognizer = models
    done = all(store.exists(f"{folder}/{name}") for name in [RECORD, *(f"{i}.wav" for i in units)])
    seen: dict[str, bytes] = {}

    def keep(image_id: str, wav: bytes) -> None:
        if image_id == pictured:
            seen[image_id] = wav
        if not done:
            store.write_bytes(f"{folder}/{image_id}.wav", wav)

    scored, spoken = score_generated_speech(synthesizer, recognizer, captions, units, keep, deduplicated=deduplicated)
    if not done:
        store.write_json(f"{folder}/{RECORD}", record)  # last: the folder is whole
    note = f"WAVs in {store.url_of(folder)}; " + "; ".join(f"{k} skipped" for k in scored.skipped)
    return SpokenRow(scored.scores, note, spoken, folder, seen.get(pictured or "", b""))


def _waveform(data: bytes) -> np.ndarray:
    """The 16 kHz samples of an audio file; none for empty speech (a model that said nothing)."""
    try:
        return load_audio(data, min_samples=1)
    except ItemRejected:
        return np.zeros(0, dtype=np.float32)


def picture(store: Store, dataset: str, image_id: str, recordings: Mapping[str, bytes], made_by: Any) -> str:
    """Keep (once) the log-mel picture of one image's speech; its store key.

    Args:
        store: The store.
        dataset: The dataset evaluated.
        image_id: The pictured image.
        recordings: Panel label → the audio file's bytes (WAV or FLAC), in order.
        made_by: What the recordings are (the WAV folders and the reference utterance): names the file.
    """
    key = f"{PICTURES}/{dataset}/{image_id}-{fingerprint({'image': image_id, 'made_by': made_by})}.png"
    if not store.exists(key):
        panels = [(label, log_mel(_waveform(data))) for label, data in recordings.items()]
        store.write_bytes(key, spectrogram_png(panels, f"{dataset}, image {image_id}: log-mel spectrograms"))
    return key
