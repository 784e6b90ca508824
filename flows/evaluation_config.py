"""The ``evaluation`` config section: which images, which Im2Sp model kind, which ASR and vocoder.

``evaluation.model`` chooses the model by ``kind`` (the :data:`~im2sp_models.im2sp_kinds.IM2SP_MODELS`
registry: ``im2sp``, ``official-im2sp``, ``official-im2sp-unit``, plugins included) with its ``checkpoint``
and the kind's options flat beside them, as ``image_tokenizer`` does for tokenizers; a key the kind does not
take is refused with its options. ``{kind: im2sp, checkpoint: null}`` (the default) is the newest checkpoint
of the training run the ``training`` section describes. The older ``evaluation.checkpoint: X`` still works
and means ``model: {kind: im2sp, checkpoint: X}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.model_config import registered
from im2sp_models.asr import RECOGNIZERS, SpeechRecognizer
from im2sp_models.im2sp_kinds import IM2SP_MODELS, Im2SpModel
from im2sp_models.registry import ModelSettings
from im2sp_models.vocoders import VOCODERS

#: The kind train-im2sp trains: the only one whose checkpoint may be left to the training run.
TRAINED_KIND = "im2sp"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Im2SpModelConfig(_Section):
    """The Im2Sp model evaluate-im2sp runs: its ``kind``, ``checkpoint`` and (flat) the kind's options.

    ``checkpoint`` null is allowed for ``im2sp`` only: the newest checkpoint of the configured training run.
    """

    kind: str = TRAINED_KIND
    checkpoint: Path | None = None

    @property
    def entry(self) -> type[Im2SpModel]:
        """The kind's registry entry (its class)."""
        return IM2SP_MODELS.entry(self.kind)

    def settings(self) -> ModelSettings:
        """The kind's typed settings, as this section gives them."""
        model = self.entry.Settings
        return model.model_validate({field: getattr(self, field) for field in model.model_fields})

    @model_validator(mode="after")
    def _checkpoint_when_needed(self) -> Im2SpModelConfig:
        if self.checkpoint is None and self.kind != TRAINED_KIND and self.entry.needs_checkpoint:
            raise ValueError(f"evaluation.model.checkpoint is required for {self.kind} (a local file or folder)")
        return self


if TYPE_CHECKING:
    Im2SpModelChoice = Im2SpModelConfig
else:  # one model per registered kind, chosen by ``kind`` (plugins included)
    Im2SpModelChoice = IM2SP_MODELS.choice(Im2SpModelConfig, "kind", TRAINED_KIND)


class EvaluationConfig(_Section):
    """evaluate-im2sp: which images, how to decode, which model, which ASR and vocoder.

    ``model`` is the Im2Sp model (see the module docstring); ``checkpoint`` is the older spelling of
    ``model: {kind: im2sp, checkpoint: …}`` (both at once are refused). ``beams`` and ``max_units``, when
    set here, override the kind's own (left out: the kind's defaults; the official kinds generate to their
    ``max_length`` of 512). ``asr_checkpoint`` null with ``asr: faster-whisper`` uses Whisper base from the
    ``[demo]`` packages when installed.
    """

    datasets: list[str] | None = None
    split: str = "test"
    max_images: int | None = Field(None, ge=1)
    beams: int = Field(1, ge=1)
    max_units: int = Field(512, ge=1)
    checkpoint: Path | None = None
    model: Im2SpModelChoice = Field(default_factory=dict, validate_default=True)
    asr: str = "faster-whisper"
    asr_checkpoint: Path | None = None
    vocoder: str = "unit-hifigan"
    vocoder_checkpoint: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _checkpoint_means_im2sp(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("checkpoint") is None:
            return data
        model = data.get("model")
        if model is None:
            return {**data, "model": {"kind": TRAINED_KIND, "checkpoint": data["checkpoint"]}}
        if isinstance(model, dict):
            if model.get("checkpoint") is not None or model.get("kind", TRAINED_KIND) != TRAINED_KIND:
                raise ValueError(
                    "evaluation.checkpoint and evaluation.model are both set: evaluation.checkpoint means "
                    "model: {kind: im2sp, checkpoint: …}; keep only evaluation.model"
                )
            return {**data, "model": {**model, "checkpoint": data["checkpoint"]}}
        return data

    @field_validator("model", mode="before")
    @classmethod
    def _kind_is_registered(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("kind"), str):
            registered(IM2SP_MODELS, value["kind"])  # names the unknown kind, which the union's own error cannot
        return value

    @field_validator("asr")
    @classmethod
    def _asr_is_registered(cls, name: str) -> str:
        return registered(RECOGNIZERS, name)

    @field_validator("vocoder")
    @classmethod
    def _vocoder_is_registered(cls, name: str) -> str:
        return registered(VOCODERS, name)

    @property
    def asr_entry(self) -> type[SpeechRecognizer]:
        """The ASR's registry entry (its class)."""
        return RECOGNIZERS.entry(self.asr)
