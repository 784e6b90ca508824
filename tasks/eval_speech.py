"""The spoken rows of an evaluation: units → vocoder → WAVs kept in the store → ASR → scores; and the picture.

Two rows speak units: the **resynthesis** row voices every reference utterance of each scorable image from its
stored full-rate units (what units + vocoder lose, apart from the model; one WAV per utterance, named by its
key), the **generated** row the model's deduplicated units (one WAV per image, named by its id). The caption
metrics score one transcript per image (for the resynthesis, its first utterance's); the word error rate
(:mod:`tasks.evaluate`) covers every utterance. Each row's WAVs go to a folder of their own, named by the
fingerprint of what made them (the record written last as ``evaluation.json``): a folder that has it is
complete, and evaluating the same again writes nothing there. Generated speech:
``reports/evaluate-im2sp/<dataset>/<model kind>-<fingerprint>/`` (:func:`tasks.evaluate.wav_folder`);
resynthesized speech, which no model made:
``reports/evaluate-im2sp-resynthesis/<dataset>/<vocoder kind>-<fingerprint>/``.

The picture shows one image's reference recording, resynthesis and generated speech as log-mel spectrograms
side by side (:mod:`im2sp_models.spectrogram`), kept once as
``reports/evaluate-im2sp-pictures/<dataset>/<image id>-<fingerprint>.png`` (the fingerprint names the two WAV
folders and the recording), so the flow inlines it without passing arrays between tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from im2sp_models.audio import load_audio
from im2sp_models.errors import ItemRejected
from im2sp_models.evaluation import first_transcripts, score_generated_speech
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
    """One spoken row: its scores (None: none), a note, the transcripts, the WAV folder, the pictured WAV.

    Attributes:
        transcripts: Every transcript, by the key its units were given under (image id, or utterance key).
        per_image: The transcript the caption metrics scored for each image (its first utterance's).
    """

    scores: dict[str, float | None] | None
    note: str
    transcripts: dict[str, str]
    wavs: str = ""
    pictured: bytes = b""
    per_image: dict[str, str] = field(default_factory=dict)


def resynthesis_folder(dataset: str, record: dict[str, Any]) -> str:
    """The store folder of one resynthesis's WAVs: ``<RESYNTHESIS_WAVS>/<dataset>/<vocoder kind>-<fingerprint>``.

    Args:
        dataset: The dataset evaluated.
        record: What made the WAVs: ``vocoder`` (``name``, ``fingerprint``), ``speech_units`` (version),
            ``training_shards``, ``split`` and ``utterances`` (image id → its utterance keys, in order).
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
    firsts: Mapping[str, str] | None = None,
) -> SpokenRow:
    """Voice all ``units``, keep the WAVs in ``folder`` (unless complete already), transcribe and score.

    Args:
        store: The store.
        folder: The row's WAV folder (named by ``record``).
        record: What made the WAVs, written last as ``evaluation.json``.
        models: The loaded vocoder and ASR.
        captions: Each image's text captions.
        units: Key → the units to voice (deduplicated or full rate, as ``deduplicated`` says), each kept as
            ``<key>.wav``: by image id, or (with ``firsts``) by utterance key.
        deduplicated: Whether ``units`` are deduplicated.
        pictured: The key of ``units`` whose WAV bytes come back in ``SpokenRow.pictured`` (for the picture).
        firsts: Image id → the key of ``units`` the caption metrics score for it (its first utterance); None:
            ``units`` are keyed by image id.
    """
    synthesizer, recognizer = models
    done = all(store.exists(f"{folder}/{name}") for name in [RECORD, *(f"{k}.wav" for k in units)])
    seen: dict[str, bytes] = {}

    def keep(key: str, wav: bytes) -> None:
        if key == pictured:
            seen[key] = wav
        if not done:
            store.write_bytes(f"{folder}/{key}.wav", wav)

    scored, spoken = score_generated_speech(
        synthesizer, recognizer, captions, units, keep, deduplicated=deduplicated, firsts=firsts
    )
    if not done:
        store.write_json(f"{folder}/{RECORD}", record)  # last: the folder is whole
    note = f"WAVs in {store.url_of(folder)}; " + "; ".join(f"{k} skipped" for k in scored.skipped)
    per_image = spoken if firsts is None else first_transcripts(spoken, firsts)
    return SpokenRow(scored.scores, note, spoken, folder, seen.get(pictured or "", b""), per_image)


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
