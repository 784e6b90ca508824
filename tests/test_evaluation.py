from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

import im2sp_models.caption_metrics
from im2sp_models.evaluation import (
    examples,
    first_transcripts,
    score_generated_speech,
    score_units,
    speak_and_transcribe,
    topline,
)

CAPTIONS = {"1": ["A dog runs.", "A dog."], "2": ["Two cats sleep."]}


class _Recognizer:
    """Says the same words for any audio; remembers what it heard."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.heard: list[np.ndarray] = []

    def transcribe(self, waveforms: list[np.ndarray]) -> list[str]:
        self.heard.extend(waveforms)
        return [self.texts[len(self.heard) - 1]]


class _Synthesizer:
    """Half a second of tone per unit, none for no units."""

    sample_rate = 16_000

    def synthesize(self, units: np.ndarray, *, deduplicated: bool) -> np.ndarray:
        assert deduplicated
        return np.sin(np.arange(len(units) * 8_000) / 10).astype(np.float32) * 0.1


@pytest.fixture(autouse=True)
def _no_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(im2sp_models.caption_metrics, "java_available", lambda: False)  # fast, deterministic


def test_unit_scores_average_the_closest_reference() -> None:
    generated = {"1": np.array([1, 2, 3]), "2": np.array([4])}
    references = {"1": [np.array([1, 2, 3, 4]), np.array([1, 2, 3])], "2": [np.array([5, 5])]}
    scores = score_units(generated, references)
    assert scores.unit_error_rate == pytest.approx((0.0 + 1.0) / 2)
    assert scores.generated_length == 2.0 and scores.reference_length == pytest.approx(3.0)
    empty = score_units({}, {})
    assert math.isnan(empty.unit_error_rate) and (empty.generated_length, empty.reference_length) == (0.0, 0.0)


def _wav(path: Path) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(1600, np.float32), 16_000, subtype="PCM_16", format="WAV")
    path.write_bytes(buffer.getvalue())


def test_topline_scores_readable_speech_and_names_the_unreadable(tmp_path: Path) -> None:
    _wav(tmp_path / "u1.wav")
    (tmp_path / "u2.wav").write_bytes(b"")
    recognizer = _Recognizer(["a dog runs"])
    paths = {"u1": "u1.wav", "u2": "u2.wav"}
    scores, note, transcripts = topline(recognizer, CAPTIONS, tmp_path, paths, {"1": ["u1"], "2": ["u2"]})
    assert transcripts == {"u1": "a dog runs"} and scores is not None and scores["Bleu_1"] == pytest.approx(1.0)
    assert "METEOR skipped" in note and "1 reference utterances unreadable now, not scored (u2: " in note
    nothing, why, none = topline(recognizer, CAPTIONS, tmp_path, paths, {"2": ["gone"]})
    assert nothing is None and none == {} and why.startswith("; 1 reference utterances unreadable") and "gone" in why


def test_topline_transcribes_every_utterance_and_scores_each_images_first(tmp_path: Path) -> None:
    for name in ("u1", "u2", "u3"):
        _wav(tmp_path / f"{name}.wav")
    paths = {name: f"{name}.wav" for name in ("u1", "u2", "u3")}
    recognizer = _Recognizer(["a dog runs", "two cats sleep", "two cats sleep"])
    scores, _, transcripts = topline(recognizer, CAPTIONS, tmp_path, paths, {"1": ["u1", "u2"], "2": ["u3"]})
    assert transcripts == {"u1": "a dog runs", "u2": "two cats sleep", "u3": "two cats sleep"}
    # the caption metrics hear image 1 through its first utterance only: every word matches a caption
    assert scores is not None and scores["Bleu_1"] == pytest.approx(1.0)
    assert first_transcripts(transcripts, {"1": "u1", "2": "u3", "3": "gone"}) == {
        "1": "a dog runs",
        "2": "two cats sleep",
    }


def test_generated_units_are_spoken_kept_and_scored() -> None:
    kept: dict[str, bytes] = {}
    recognizer = _Recognizer(["a dog runs", ""])
    units = {"1": np.array([3, 1]), "2": np.array([], dtype=np.int64)}
    scored, spoken = score_generated_speech(_Synthesizer(), recognizer, CAPTIONS, units, kept.__setitem__)
    assert spoken == {"1": "a dog runs", "2": ""} and scored.scores["CIDEr"] is not None
    assert soundfile.info(io.BytesIO(kept["1"])).frames == 16_000 and soundfile.info(io.BytesIO(kept["2"])).frames == 0
    assert len(recognizer.heard[1]) == 1600 and not recognizer.heard[1].any()  # empty speech is heard as silence
    again = speak_and_transcribe(_Synthesizer(), _Recognizer(["x", "y"]), units, lambda key, wav: None)
    assert again == {"1": "x", "2": "y"}


def test_utterances_are_all_spoken_and_each_images_first_is_scored() -> None:
    kept: dict[str, bytes] = {}
    units = {"u1": np.array([3, 1]), "u2": np.array([2]), "u3": np.array([1])}
    recognizer = _Recognizer(["a dog runs", "nothing like it", "two cats sleep"])
    firsts = {"1": "u1", "2": "u3"}
    scored, spoken = score_generated_speech(
        _Synthesizer(), recognizer, CAPTIONS, units, kept.__setitem__, firsts=firsts
    )
    assert sorted(kept) == ["u1", "u2", "u3"] and spoken["u2"] == "nothing like it"
    assert scored.scores["Bleu_1"] == pytest.approx(1.0)  # u2, badly heard, is not image 1's caption transcript


def test_examples_show_dashes_for_missing_transcripts() -> None:
    rows = examples(["1"], CAPTIONS, {"1": np.arange(30)}, {}, {"1": "a dog"})
    assert rows == [
        {
            "image_id": "1",
            "references": CAPTIONS["1"],
            "reference_speech_asr": "-",
            "generated_speech_asr": "a dog",
            "generated_units": " ".join(str(u) for u in range(20)),
        }
    ]
