"""The one YAML config that drives every flow, validated by pydantic, in sections.

Relative paths (dataset roots, a local store URL, checkpoints) are taken relative to the config file.
Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import fsspec
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flows.evaluation_config import EvaluationConfig
from flows.model_config import (
    MODEL_SECTIONS,
    ImageTokenizerChoice,
    ImageTokenizerConfig,
    SpeechChoice,
    SpeechConfig,
    model_problem,
    registered,
)
from storage.errors import ConfigError, Im2SpError
from storage.sources.spec import CocoSpec, DatasetSpec, Flickr8kSpec
from storage.store import Store, StoreRef


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Section):
    """Where every store lives: a local folder or an fsspec URL (``s3://bucket/im2sp``).

    Credentials never belong in the config (it is a deployment parameter, shown in the UI): leave them to
    the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, an instance role, ``~/.aws``), or name
    a Prefect Secret block in ``secret`` whose value is a JSON object of fsspec options (for s3fs:
    ``{"key": …, "secret": …}``); it is read when a store is opened and merged over ``storage_options``.
    """

    url: str = "store"
    storage_options: dict[str, Any] = Field(default_factory=dict)
    secret: str | None = None

    @field_validator("url")
    @classmethod
    def _protocol_is_installed(cls, url: str) -> str:
        if "://" in url:
            protocol = url.split("://", 1)[0]
            try:
                fsspec.get_filesystem_class(protocol)
            except (ValueError, ImportError) as error:
                raise ValueError(
                    f"no filesystem for {protocol}:// ({error}); install its fsspec package (s3fs for s3://, "
                    "gcsfs for gs://) or fix the URL"
                ) from None
        return url

    @property
    def options(self) -> dict[str, Any] | None:
        """Fsspec options as tasks take them, the secret's merged in (None when there are none)."""
        options = dict(self.storage_options)
        if self.secret:
            options.update(_secret_options(self.secret))
        return options or None

    def ref(self) -> StoreRef:
        """The store as tasks take it: the URL and the fsspec options (the secret's merged in, read now)."""
        return StoreRef(self.url, self.options)

    def open(self) -> Store:
        """The store this section names."""
        return self.ref().open()


def _secret_options(name: str) -> dict[str, Any]:
    """The fsspec options held by a Prefect Secret block (a JSON object)."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()  # type: ignore[union-attr]
    except ValueError as error:
        raise ConfigError(f"store.secret: no Prefect Secret block named {name!r} ({error})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"store.secret: the Secret block {name!r} must hold a JSON object of fsspec options")
    return dict(value)


class ShardingConfig(_Section):
    """How work is cut: items per pipeline shard, threads per task for file I/O, how speech is planned.

    ``speech_plan``: ``by-image`` (every utterance of an image in one speech shard, whole images per shard) or
    ``by-id`` (utterances in id order, the plan of stores built before format 3). Unset: a dataset keeps the plan
    of its current manifests (``by-image`` for a new one), so an upgrade rebuilds nothing; set it to replan.
    """

    shard_size: int = Field(1024, ge=1)
    io_workers: int = Field(4, ge=1)
    speech_plan: Literal["by-image", "by-id"] | None = None


class RunnerConfig(_Section):
    """Where shard tasks run: in-process threads, or a Dask cluster (``address`` of a scheduler, or a local one).

    ``workers``: threads for ``local``, worker processes (one thread each) for a Dask cluster started without
    an address. ``gpu_resources``: the Dask worker resources a model task asks for when ``device: cuda``.
    """

    kind: Literal["local", "dask"] = "local"
    address: str | None = None
    workers: int = Field(2, ge=1)
    gpu_resources: dict[str, float] = Field(default_factory=lambda: {"GPU": 1.0})
    # A cluster the flow creates for its shard tasks instead of a LocalCluster, e.g.
    # "dask_kubernetes.operator.KubeCluster" with its keyword arguments; adapt: {minimum: 0, maximum: 32}.
    cluster_class: str | None = None
    cluster_kwargs: dict[str, Any] = Field(default_factory=dict)
    adapt: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _address_only_for_dask(self) -> RunnerConfig:
        if self.address and self.kind != "dask":
            raise ValueError("runner.address is only used with runner.kind: dask")
        if self.address and (self.cluster_class or self.cluster_kwargs or self.adapt):
            raise ValueError("runner.address names a running cluster: cluster_class, cluster_kwargs, adapt are unused")
        return self


class RetokenizeConfig(_Section):
    """When retokenize-images runs besides the codebook event, and how many store versions stay on disk.

    ``cron`` (UTC) is the safety net for a missed event; ``retention`` counts the versions kept per dataset
    and store kind, the current one included (older ones are deleted after a new version is published).
    """

    cron: str = "0 3 * * *"
    retention: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _cron_has_five_fields(self) -> RetokenizeConfig:
        if len(self.cron.split()) != 5:
            raise ValueError(f"retokenize.cron {self.cron!r} must have five fields (minute hour day month weekday)")
        return self


#: Model sizes used when no GiT checkpoint initialises training (``base``: GiT-base's shapes).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "max_position_embeddings": 1024,
        "vision_config": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
    },
    "base": {"max_position_embeddings": 1024},
}


class TrainingConfig(_Section):
    """train-im2sp: the paper's optimiser settings by default; a GiT checkpoint folder, or a preset size.

    ``datasets`` (default: all) and ``splits`` choose the training shards; ``steps`` optimiser steps of
    ``batch_size`` × ``grad_accum`` utterances; a checkpoint every ``checkpoint_every`` steps (and at the end).
    """

    datasets: list[str] | None = None
    splits: list[str] = Field(default_factory=lambda: ["train", "restval"])
    checkpoint: Path | None = None
    preset: Literal["tiny", "base"] = "base"
    steps: int = Field(10_000, ge=1)
    batch_size: int = Field(16, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    warmup_steps: int = Field(500, ge=0)
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(10, ge=1)
    freeze_image_encoder: bool = False
    max_units: int = Field(512, ge=1)
    seed: int = 0


class VocoderTrainingConfig(_Section):
    """train-vocoder: a unit vocoder for the current speech codebook, learned from (speech units, recording) pairs.

    ``kind`` is a trainable vocoder kind (``unit-mel``, ``unit-hifigan``) and ``settings`` its training options
    (checked by the kind's trainer);
    ``datasets`` (default: all) and ``splits`` choose the utterances, at most ``max_utterances`` of them (a seeded
    choice: their targets are held in memory — per 4-second utterance about 35 KB of float16 log-mel for
    unit-mel, 128 KB of int16 samples for unit-hifigan); ``steps``
    optimiser steps, a checkpoint every ``checkpoint_every`` (a killed run resumes from the newest).
    """

    kind: str = "unit-mel"
    settings: dict[str, Any] = Field(default_factory=dict)
    datasets: list[str] | None = None
    splits: list[str] = Field(default_factory=lambda: ["train", "restval"])
    max_utterances: int = Field(20_000, ge=1)
    steps: int = Field(3_000, ge=1)
    checkpoint_every: int = Field(250, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _kind_is_trainable(self) -> VocoderTrainingConfig:
        from im2sp_models.vocoders import VOCODERS, training_settings

        if not self.model_fields_set & {"kind", "settings"}:
            return self  # the defaults: checked when train-vocoder runs
        try:
            entry = VOCODERS.entry(self.kind)
        except Im2SpError as error:
            raise ValueError(str(error)) from None
        if getattr(entry, "Trainer", None) is None:
            raise ValueError(
                f"vocoder {self.kind!r} has no trainer; trainable kinds: {', '.join(trainable_vocoders())}"
            )
        try:
            training_settings(self.kind, self.settings)  # names a bad option now, not after the data is read
        except Im2SpError as error:
            raise ValueError(str(error)) from None
        return self


def trainable_vocoders() -> list[str]:
    """The vocoder kinds train-vocoder can train (their registry entry has a ``Trainer``)."""
    from im2sp_models.vocoders import VOCODERS

    return [name for name in VOCODERS.names() if getattr(VOCODERS.entry(name), "Trainer", None) is not None]


#: Top-level store folders that are not datasets (``reports/``: previews and storage reports).
RESERVED_NAMES = frozenset({"reports"})


class PipelineConfig(_Section):
    """The whole pipeline configuration."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    datasets: dict[str, DatasetSpec] = Field(min_length=1)
    image_tokenizer: ImageTokenizerChoice = Field(default_factory=dict, validate_default=True)
    speech: SpeechChoice = Field(default_factory=dict, validate_default=True)
    sharding: ShardingConfig = Field(default_factory=ShardingConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    retokenize: RetokenizeConfig = Field(default_factory=RetokenizeConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    vocoder_training: VocoderTrainingConfig = Field(default_factory=VocoderTrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    @field_validator("image_tokenizer", "speech", mode="before")
    @classmethod
    def _model_is_registered(cls, value: Any, info: ValidationInfo) -> Any:
        key, registry = MODEL_SECTIONS[str(info.field_name)]
        if isinstance(value, dict) and isinstance(value.get(key), str):
            registered(registry, value[key])  # names the unknown model, which the union's own error cannot
        return value

    def selected(self, datasets: list[str] | None) -> dict[str, DatasetSpec]:
        """The configured datasets named in ``datasets`` (all when None), in config order.

        Raises:
            ConfigError: A name that is not configured.
        """
        if datasets is None:
            return dict(self.datasets)
        unknown = sorted(set(datasets) - set(self.datasets))
        if unknown:
            raise ConfigError(f"unknown dataset(s) {', '.join(unknown)}; configured: {', '.join(self.datasets)}")
        return {name: spec for name, spec in self.datasets.items() if name in datasets}

    @model_validator(mode="after")
    def _dataset_names(self) -> PipelineConfig:
        for name in self.datasets:
            # A leading letter or digit keeps dataset names apart from "_shared" (stores of all datasets).
            if not name or not name[0].isalnum() or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(
                    f"dataset name {name!r} must start with a letter or digit; then letters, digits, - or _"
                )
            if name != name.lower():
                raise ValueError(f"dataset name {name!r} must be lowercase")
            if name in RESERVED_NAMES:
                raise ValueError(f"dataset name {name!r} is reserved: the store keeps its {name}/ folder there")
        return self


def _resolve(document: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make relative dataset roots and a relative local store URL absolute, against ``base``."""
    store = document.setdefault("store", {})
    if isinstance(store, dict):
        store.setdefault("url", StoreConfig().url)  # the default store is relative to the config file too
    if isinstance(store, dict) and isinstance(store.get("url"), str) and "://" not in store["url"]:
        store["url"] = str((base / Path(store["url"]).expanduser()).resolve())
    datasets = document.get("datasets")
    if isinstance(datasets, dict):
        for spec in datasets.values():
            if isinstance(spec, dict) and isinstance(spec.get("root"), str):
                spec["root"] = str((base / Path(spec["root"]).expanduser()).resolve())
    evaluation = document.get("evaluation")
    model = evaluation.get("model") if isinstance(evaluation, dict) else None
    parts = [document.get(section) for section in ("image_tokenizer", "speech", "training")] + [evaluation]
    keys = ("checkpoint", "asr_checkpoint", "vocoder_checkpoint")
    for part, names in [*((part, keys) for part in parts), (model, ("checkpoint", "git_config", "codebook"))]:
        for key in names:
            if isinstance(part, dict) and isinstance(part.get(key), str):
                part[key] = str((base / Path(part[key]).expanduser()).resolve())
    return document


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for problem in error.errors():
        location, message = model_problem(list(problem["loc"]), problem["msg"], problem["type"])
        lines.append(f"  {'.'.join(str(part) for part in location) or '(top level)'}: {message}")
    return "\n".join(lines)


def parse_config(document: Any, *, base: Path, source: str = "config") -> PipelineConfig:
    """Validate a parsed config document.

    Raises:
        ConfigError: With one line per bad key (``datasets.coco.root: Field required``).
    """
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (store, datasets, …)")
    try:
        return PipelineConfig.model_validate(_resolve(document, base))
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def load_config(path: Path) -> PipelineConfig:
    """Read and validate a YAML config file.

    Raises:
        ConfigError: If the file is missing, not YAML (file and line named), or invalid (keys named).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config ({error.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    return parse_config(document, base=path.parent.resolve(), source=str(path))


__all__ = [
    "CocoSpec",
    "ConfigError",
    "EvaluationConfig",
    "Flickr8kSpec",
    "ImageTokenizerConfig",
    "PipelineConfig",
    "SpeechConfig",
    "load_config",
    "parse_config",
]
