"""The config sections that choose a model: one pydantic model per registered entry, chosen by name.

``image_tokenizer`` (chosen by ``name``) and ``speech`` (chosen by ``features``) hold the pipeline's own keys
for that stage plus the chosen model's options (its ``Settings``), flat, as users write them. Each section is
a discriminated union built from the registry, plugins included, so a key the chosen model does not take is
refused with that model's options, and its settings come out typed (:meth:`ImageTokenizerConfig.settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from im2sp_models.im2sp_kinds import IM2SP_MODELS
from im2sp_models.image_tokenizers import TOKENIZERS, ImageTokenizer
from im2sp_models.registry import ModelSettings, Registry, option_names
from im2sp_models.speech_features import EXTRACTORS, FeatureExtractor
from storage.errors import UnknownModelError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _settings(section: BaseModel, model: type[ModelSettings]) -> ModelSettings:
    """The entry's settings out of a section that holds them among its own fields."""
    return model.model_validate({field: getattr(section, field) for field in model.model_fields})


class ImageTokenizerConfig(_Section):
    """Image tokenizer choice and how tokenize-images / learn-image-codebook run it.

    ``name`` picks the tokenizer; its options sit beside the section's own keys (vit-vqgan: ``precision``,
    ``trust_pickle``, ``forward_batch``) and a key neither takes is refused with the tokenizer's options.
    ``checkpoint`` is a local file or folder; for a tokenizer that learns its codebook (``patch-vq``) it may
    be left out, and the codebook that learn-image-codebook published in the store is used.
    ``codebook_size``, ``sample_images``, ``seed`` and ``niter`` drive learn-image-codebook; ``batch_size``
    images are decoded and encoded at once; ``codec`` compresses the stored units. ``image_preprocess``
    decodes image files for tokenize-images: ``ours`` (EXIF orientation applied, alpha composited onto white)
    or ``official`` (the paper's ``convert("RGB")``: for exact parity with their tokenization).
    """

    name: str = "patch-vq"
    checkpoint: Path | None = None
    codebook_size: int = Field(8192, ge=2, le=65536)
    sample_images: int = Field(2000, ge=1)
    seed: int = 0
    # With k-means++ seeding, 10 Lloyd iterations reach the inertia of 20 (benchmarks/bench_speech_kmeans.py).
    niter: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    # Measured by benchmarks/bench_unit_bits.py: byte-shuffle wins on skewed streams (the real ones).
    codec: Literal["blosc-zstd-shuffle", "blosc-zstd-bitshuffle", "ans", "auto", "none"] = "blosc-zstd-shuffle"
    reconstruction_sample: int = Field(8, ge=0)
    # How image files become pixels (im2sp_models/image_preprocess.py); official: the paper's code, exactly.
    image_preprocess: Literal["ours", "official"] = "ours"

    @property
    def entry(self) -> type[ImageTokenizer]:
        """The tokenizer's registry entry (its class)."""
        return TOKENIZERS.entry(self.name)

    def settings(self) -> ModelSettings:
        """The tokenizer's typed settings, as this section gives them."""
        return _settings(self, self.entry.Settings)

    @model_validator(mode="after")
    def _checkpoint_when_needed(self) -> ImageTokenizerConfig:
        entry = self.entry
        if self.checkpoint is None and entry.needs_checkpoint and not entry.learns_codebook:
            raise ValueError(f"image_tokenizer.checkpoint is required for {self.name} (a local file or folder)")
        return self


class SpeechConfig(_Section):
    """Speech feature extractor and unit codebook choices (read by the speech flows).

    ``features`` picks the extractor; its options sit beside the section's own keys (hubert: ``layer``,
    ``batch_size``, ``max_batch_frames``, ``precision``; mfcc: ``n_mfcc``, ``n_mels``, ``win_length``,
    ``hop_length``, ``delta_width``) and a key neither takes is refused with the extractor's options.
    ``keep: sample`` stores only a seeded ``sample_fraction`` of each utterance's frames (what k-means
    trains on); ``keep: all`` stores every frame so the codebook can be re-learned without re-extraction.
    """

    features: str = "mfcc"
    checkpoint: Path | None = None
    clusters: int = Field(200, ge=2)
    keep: Literal["sample", "all"] = "sample"
    sample_fraction: float = Field(0.1, gt=0.0, le=1.0)
    seed: int = 0
    batch_size: int = Field(8, ge=1)
    chunk_seconds: float = Field(100.0, gt=0.0)
    max_frames: int = Field(500_000, ge=1)
    # k-means++ seeding, 8 Lloyd iterations, then swap rounds of 4 (benchmarks/bench_speech_kmeans.py, C1).
    niter: int = Field(8, ge=1)
    swap_rounds: int = Field(3, ge=0)

    @property
    def entry(self) -> type[FeatureExtractor]:
        """The extractor's registry entry (its class)."""
        return EXTRACTORS.entry(self.features)

    def settings(self) -> ModelSettings:
        """The extractor's typed settings, as this section gives them."""
        return _settings(self, self.entry.Settings)

    @model_validator(mode="after")
    def _checkpoint_when_needed(self) -> SpeechConfig:
        if self.checkpoint is None and self.entry.needs_checkpoint:
            raise ValueError(f"speech.checkpoint is required for {self.features} (a local folder)")
        return self


if TYPE_CHECKING:
    ImageTokenizerChoice = ImageTokenizerConfig
    SpeechChoice = SpeechConfig
else:  # one model per registered entry, chosen by name (plugins included)
    ImageTokenizerChoice = TOKENIZERS.choice(ImageTokenizerConfig, "name", "patch-vq")
    SpeechChoice = EXTRACTORS.choice(SpeechConfig, "features", "mfcc")
#: The sections that hold a model's settings: section → (the key naming the entry, its registry).
MODEL_SECTIONS: dict[str, tuple[str, Registry[Any]]] = {
    "image_tokenizer": ("name", TOKENIZERS),
    "speech": ("features", EXTRACTORS),
}


def registered(registry: Registry[Any], name: str) -> str:
    """``name`` if the registry has it, else a ValueError naming the choices (pydantic reports ValueErrors)."""
    try:
        registry.entry(name)
    except UnknownModelError as error:
        raise ValueError(str(error)) from None
    return name


#: Model sections nested inside another section: path → (the key naming the entry, its registry).
NESTED_MODEL_SECTIONS: dict[tuple[str, ...], tuple[str, Registry[Any]]] = {
    ("evaluation", "model"): ("kind", IM2SP_MODELS),
}


def _model_section(location: list[Any]) -> tuple[int, Registry[Any]] | None:
    """How many leading parts of ``location`` name a model section, and its registry (None: not one)."""
    if location and str(location[0]) in MODEL_SECTIONS:
        return 1, MODEL_SECTIONS[str(location[0])][1]
    for path, (_, registry) in NESTED_MODEL_SECTIONS.items():
        if tuple(str(part) for part in location[: len(path)]) == path:
            return len(path), registry
    return None


def model_problem(location: list[Any], message: str, kind: str) -> tuple[list[Any], str]:
    """A validation problem as users should read it: the union's tag dropped from its location and said in words.

    Args:
        location: Pydantic's ``loc`` (``["image_tokenizer", "vit-vqgan", "foo"]``).
        message: Pydantic's ``msg``.
        kind: Pydantic's error ``type`` (``extra_forbidden`` for an unknown key).
    """
    found = _model_section(location)
    if found is None or len(location) <= found[0] or location[found[0]] not in found[1].names():
        return location, message
    depth, registry = found
    entry = registry.entry(str(location[depth]))
    section = ".".join(str(part) for part in location[:depth])
    location = [*location[:depth], *location[depth + 1 :]]
    if kind == "extra_forbidden":
        return location, f"neither a key of {section} nor an option of {entry.name} ({option_names(entry.Settings)})"
    return location, message if entry.name in message else f"{message} ({entry.name})"
