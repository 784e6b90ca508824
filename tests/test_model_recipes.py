"""The model recipe of docs/EXTENDING.md, followed for a speech feature extractor, an ASR and a vocoder.

Each kind gets a tiny model written as the recipe says: a ``ModelSettings`` subclass with one option, the class
with ``name``, ``Settings``, ``needs_checkpoint``, ``load(cls, checkpoint, settings=None, *, device="auto")``,
the kind's work methods and a ``fingerprint`` (name + every setting that changes the output + the weights'
checksum). Its registration is the recipe's two steps, undone after each test: the kind's ``register_*``
decorator and its ``BUILTINS`` line (the registry's ``builtins`` table, which ``register`` checks the module
against). The decorator is applied by a fixture rather than written above the class: at module level it would
register the model for the whole test session (``test_model_registry.py`` checks the built-in names).

Then the "then" part: the config takes the model by name (the extractor's option flat in ``speech``; ASR and
vocoder by ``evaluation.asr`` / ``evaluation.vocoder``), a wrong key fails with the model's options, and the
model loads and works through the references of ``tasks/models.py``. The checkpoints are tiny torch files the
tests write and the models read back with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from pydantic import Field, create_model

import flows.config
import flows.model_config
import tasks.models
from flows.config import PipelineConfig, parse_config
from flows.model_config import SpeechConfig
from flows.plans import extractor_ref
from im2sp_models.asr import RECOGNIZERS, register_asr
from im2sp_models.audio import CHUNK_SECONDS, SAMPLE_RATE
from im2sp_models.registry import ModelSettings, Registry
from im2sp_models.speech_features import EXTRACTORS, register_extractor
from im2sp_models.vocoders import VOCODERS, register_vocoder
from storage.errors import ConfigError, UnknownModelError
from storage.hashing import sha256_file
from tasks.models import AsrRef, ExtractorRef, VocoderRef, asr_for, extractor_for, vocoder_for

#: Samples between frames (50 frames/s at 16 kHz) and the window of one frame, as HuBERT has them.
HOP = 320
WINDOW = 400
#: A config's one dataset (the sections under test are the model ones).
DATASETS = {"datasets": {"c": {"kind": "coco", "root": "c"}}}


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]


# --- a speech feature extractor: weight-free, one option -----------------------------------------------------


class ToyBandsSettings(ModelSettings):
    """toy-bands' option: ``bands``, how many equal parts of each frame's window are averaged (the dimension)."""

    bands: int = Field(4, ge=1, le=16)


class ToyBands:
    """Each 25 ms window (every 20 ms) → the mean of each of its ``bands`` equal parts."""

    name: ClassVar[str] = "toy-bands"
    Settings: ClassVar[type[ModelSettings]] = ToyBandsSettings
    needs_checkpoint: ClassVar[bool] = False

    def __init__(self, bands: int) -> None:
        self.bands = bands

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: ToyBandsSettings | None = None, *, device: str = "auto"
    ) -> ToyBands:
        return cls((settings or ToyBandsSettings()).bands)

    @property
    def dim(self) -> int:
        return self.bands

    @property
    def min_samples(self) -> int:
        return WINDOW

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.name, self.bands)

    def extract(self, waveforms: list[np.ndarray], chunk_seconds: float = CHUNK_SECONDS) -> list[np.ndarray]:
        # Frames are independent, so whole waveforms give what chunks joined would.
        out = []
        for waveform in waveforms:
            frames = 0 if len(waveform) < WINDOW else 1 + (len(waveform) - WINDOW) // HOP
            windows = [waveform[t * HOP : t * HOP + WINDOW] for t in range(frames)]
            rows = [[part.mean() for part in np.array_split(window, self.bands)] for window in windows]
            out.append(np.asarray(rows, dtype=np.float32).reshape(frames, self.bands))
        return out


# --- an ASR: a checkpoint folder, one option -----------------------------------------------------------------


class ToyLevelsAsrSettings(ModelSettings):
    """toy-levels-asr's option: ``frame``, the samples read as one letter."""

    frame: int = Field(HOP, ge=1)


class ToyLevelsAsr:
    """Each ``frame`` of samples → the letter of its mean level (0 → the alphabet's first, 1 → its last)."""

    name: ClassVar[str] = "toy-levels-asr"
    Settings: ClassVar[type[ModelSettings]] = ToyLevelsAsrSettings
    needs_checkpoint: ClassVar[bool] = True

    def __init__(self, alphabet: str, frame: int, checksum: str) -> None:
        self.alphabet = alphabet
        self.frame = frame
        self.checksum = checksum

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: ToyLevelsAsrSettings | None = None, *, device: str = "auto"
    ) -> ToyLevelsAsr:
        if checkpoint is None or not (checkpoint / "alphabet.pt").is_file():
            raise ValueError(f"toy-levels-asr needs a folder holding alphabet.pt; got {checkpoint}")
        weights = checkpoint / "alphabet.pt"
        codes = torch.load(str(weights), map_location="cpu", weights_only=True)["alphabet"]
        alphabet = "".join(chr(int(code)) for code in codes)
        return cls(alphabet, (settings or ToyLevelsAsrSettings()).frame, sha256_file(weights))

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.name, self.frame, self.checksum)

    def transcribe(self, waveforms: list[np.ndarray]) -> list[str]:
        top = len(self.alphabet) - 1
        return [
            "".join(
                self.alphabet[int(np.clip(round(float(w[i : i + self.frame].mean()) * top), 0, top))]
                for i in range(0, len(w) - self.frame + 1, self.frame)
            )
            for w in waveforms
        ]


# --- a vocoder: a checkpoint file, one option ----------------------------------------------------------------


class ToyLevelsSettings(ModelSettings):
    """toy-levels' option: ``hop``, the samples each unit lasts."""

    hop: int = Field(HOP, ge=1)


class ToyLevels:
    """Each unit → ``hop`` samples at its level (the checkpoint's ``levels``), 16 kHz."""

    name: ClassVar[str] = "toy-levels"
    Settings: ClassVar[type[ModelSettings]] = ToyLevelsSettings
    needs_checkpoint: ClassVar[bool] = True

    def __init__(self, levels: np.ndarray, hop: int, checksum: str) -> None:
        self.levels = levels
        self.hop = hop
        self.checksum = checksum

    @classmethod
    def load(
        cls, checkpoint: Path | None, settings: ToyLevelsSettings | None = None, *, device: str = "auto"
    ) -> ToyLevels:
        if checkpoint is None or not checkpoint.is_file():
            raise ValueError(f"toy-levels needs its levels file; got {checkpoint}")
        levels = torch.load(str(checkpoint), map_location="cpu", weights_only=True)["levels"]
        hop = (settings or ToyLevelsSettings()).hop
        return cls(levels.numpy().astype(np.float32), hop, sha256_file(checkpoint))

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.name, self.hop, self.checksum)

    def synthesize(self, units: np.ndarray, *, deduplicated: bool = True, speaker: int = 0) -> np.ndarray:
        # No duration predictor: every unit lasts one hop whether or not repeats were removed.
        return np.repeat(self.levels[np.asarray(units, dtype=np.int64)], self.hop).astype(np.float32)


# --- registration, the recipe's way, undone after each test --------------------------------------------------


def _register(monkeypatch: pytest.MonkeyPatch, registry: Registry[Any], decorator: Any, entry: type[Any]) -> None:
    """Step 1's decorator and step 2's ``BUILTINS`` line, on copies of the registry's tables (restored after)."""
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "builtins", {**registry.builtins, entry.name: entry.__module__})
    assert decorator(entry) is entry


@pytest.fixture(autouse=True)
def _fresh_model_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-process model cache of tasks/models.py, empty here and restored after."""
    monkeypatch.setattr(tasks.models, "_LOADED", {})


@pytest.fixture
def toy_bands(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """toy-bands registered, and the ``speech`` section's union rebuilt with it (both restored after).

    ``speech`` is a union of one model per extractor, built from the registry when flows.model_config is
    first imported: a built-in's ``BUILTINS`` line is there by then, an entry registered later (as here) is not.
    So the union is built again now, as that import would build it, and parse_config's PipelineConfig is
    swapped for one that uses it; the members that ``choice`` sets on flows.model_config are put back after.
    """
    _register(monkeypatch, EXTRACTORS, register_extractor, ToyBands)
    module = vars(flows.model_config)
    saved = dict(module)
    speech = EXTRACTORS.choice(SpeechConfig, "features", "mfcc")
    rebuilt = create_model(
        "PipelineConfig", __base__=PipelineConfig, speech=(speech, Field(default_factory=dict, validate_default=True))
    )
    monkeypatch.setattr(flows.config, "PipelineConfig", rebuilt)
    yield
    for key in set(module) - set(saved):
        del module[key]
    module.update(saved)


@pytest.fixture
def toy_asr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """toy-levels-asr registered (restored after); its checkpoint folder, alphabet ``abcd``."""
    _register(monkeypatch, RECOGNIZERS, register_asr, ToyLevelsAsr)
    folder = tmp_path / "toy-asr"
    folder.mkdir()
    torch.save({"alphabet": torch.tensor([ord(c) for c in "abcd"])}, str(folder / "alphabet.pt"))
    return folder


@pytest.fixture
def toy_vocoder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """toy-levels registered (restored after); its checkpoint file, levels 0, 1/3, 2/3, 1."""
    _register(monkeypatch, VOCODERS, register_vocoder, ToyLevels)
    path = tmp_path / "toy-levels.pt"
    torch.save({"levels": torch.tensor([0.0, 1 / 3, 2 / 3, 1.0])}, str(path))
    return path


# --- the tests -----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("toy_bands")
def test_a_recipe_extractor_is_configured_by_name_with_its_option_flat(tmp_path: Path) -> None:
    document = {**DATASETS, "speech": {"features": "toy-bands", "bands": 3, "clusters": 50}}
    config = parse_config(document, base=tmp_path)
    assert config.speech.features == "toy-bands" and config.speech.clusters == 50
    assert config.speech.entry is ToyBands
    assert config.speech.settings() == ToyBandsSettings(bands=3)

    ref = extractor_ref(config)
    assert ref == ExtractorRef("toy-bands", "", "auto", {"bands": 3})
    extractor = extractor_for(ref)
    assert isinstance(extractor, ToyBands) and extractor_for(ref) is extractor  # loaded once per process
    one_second, too_short = np.linspace(0, 1, SAMPLE_RATE, dtype=np.float32), np.zeros(WINDOW - 1, np.float32)
    features = extractor.extract([one_second, too_short])
    assert [f.shape for f in features] == [(49, 3), (0, 3)] and extractor.dim == 3
    assert all(f.dtype == np.float32 for f in features)
    assert features[0][0, 0] < features[0][0, 2] < features[0][-1, 0]  # a rising ramp, band by band
    assert extractor.fingerprint == extractor_for(ExtractorRef("toy-bands", "", "cpu", {"bands": 3})).fingerprint
    assert extractor.fingerprint != extractor_for(ExtractorRef("toy-bands", "", "auto")).fingerprint


@pytest.mark.usefixtures("toy_bands")
def test_a_wrong_speech_key_is_refused_with_the_recipe_extractors_options(tmp_path: Path) -> None:
    document = {**DATASETS, "speech": {"features": "toy-bands", "layer": 9}}
    refused = r"speech\.layer: neither a key of speech nor an option of toy-bands \(bands\)"
    with pytest.raises(ConfigError, match=refused):
        parse_config(document, base=tmp_path)
    with pytest.raises(ConfigError, match=r"speech\.bands: .*less than or equal to 16"):
        parse_config({**DATASETS, "speech": {"features": "toy-bands", "bands": 17}}, base=tmp_path)
    with pytest.raises(ConfigError, match=r"speech feature extractor toy-bands: layer: .*\(its options: bands\)"):
        ExtractorRef("toy-bands", "", "cpu", {"layer": 9})


def test_a_recipe_asr_is_chosen_by_name_and_transcribes(toy_asr: Path, tmp_path: Path) -> None:
    document = {**DATASETS, "evaluation": {"asr": "toy-levels-asr", "asr_checkpoint": str(toy_asr)}}
    section = parse_config(document, base=tmp_path).evaluation
    assert section.asr == "toy-levels-asr" and section.asr_entry is ToyLevelsAsr
    with pytest.raises(ConfigError, match=r"evaluation\.asr: .*unknown ASR 'toy-levels-asr2'"):
        parse_config({**DATASETS, "evaluation": {"asr": "toy-levels-asr2"}}, base=tmp_path)
    with pytest.raises(ConfigError, match=r"ASR toy-levels-asr: frames: .*\(its options: frame\)"):
        AsrRef("toy-levels-asr", str(toy_asr), "cpu", {"frames": 2})

    # As evaluate-im2sp makes its reference from the section.
    recognizer = asr_for(AsrRef(section.asr, str(section.asr_checkpoint), "cpu", {"frame": 2}))
    assert isinstance(recognizer, ToyLevelsAsr)
    speech = np.array([0, 0, 1, 1, 0.3, 0.4, 0.7, 0.6], dtype=np.float32)
    assert recognizer.transcribe([speech, speech[:3]]) == ["adbc", "a"]
    assert recognizer.fingerprint != asr_for(AsrRef(section.asr, str(toy_asr), "cpu")).fingerprint


def test_a_recipe_vocoder_is_chosen_by_name_and_synthesizes(toy_vocoder: Path, toy_asr: Path, tmp_path: Path) -> None:
    document = {**DATASETS, "evaluation": {"vocoder": "toy-levels", "vocoder_checkpoint": str(toy_vocoder)}}
    section = parse_config(document, base=tmp_path).evaluation
    assert section.vocoder == "toy-levels"
    with pytest.raises(ConfigError, match=r"evaluation\.vocoder: .*unknown vocoder 'toy-level'"):
        parse_config({**DATASETS, "evaluation": {"vocoder": "toy-level"}}, base=tmp_path)
    with pytest.raises(ConfigError, match=r"vocoder toy-levels: hops: .*\(its options: hop\)"):
        VocoderRef("toy-levels", str(toy_vocoder), "cpu", {"hops": 2})

    # As evaluate-im2sp makes its reference from the section.
    vocoder = vocoder_for(VocoderRef(section.vocoder, str(section.vocoder_checkpoint), "cpu"))
    assert isinstance(vocoder, ToyLevels) and vocoder.sample_rate == SAMPLE_RATE
    units = np.array([3, 0, 2, 1, 1])
    waveform = vocoder.synthesize(units, deduplicated=True)
    assert waveform.shape == (len(units) * HOP,) and waveform.dtype == np.float32
    assert waveform.min() >= -1 and waveform.max() <= 1
    assert asr_for(AsrRef("toy-levels-asr", str(toy_asr), "cpu")).transcribe([waveform]) == ["dacbb"]
    shorter = vocoder_for(VocoderRef("toy-levels", str(toy_vocoder), "cpu", {"hop": 160}))
    assert shorter.synthesize(units).shape == (len(units) * 160,)
    assert shorter.fingerprint != vocoder.fingerprint


def test_a_recipe_entry_cannot_take_a_builtin_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 2 is what makes a name built in: the same class from another module is refused."""
    monkeypatch.setattr(VOCODERS, "_entries", dict(VOCODERS._entries))
    impostor = type("ToyLevels", (ToyLevels,), {"name": "unit-hifigan", "__module__": "elsewhere"})
    with pytest.raises(UnknownModelError, match="'unit-hifigan' is a built-in vocoder's name"):
        register_vocoder(impostor)
