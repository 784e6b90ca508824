"""What the config means for the store: model references, version ids, run plans, the codebook event.

Several flows ask the same questions (which tokenizer, which features version, which speech-units version,
which training run); the answers live here, once, so that flows import them from one place instead of from
each other. A flow running another as a subflow (retokenize-images, the pipeline) still imports that flow.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.config import MODEL_PRESETS, PipelineConfig
from storage.errors import Im2SpError
from storage.hashing import fingerprint
from storage.kinds import IMAGE_UNITS, SPEECH_UNITS, TRAINING_SHARDS
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tasks.image_codebook import current_codebook
from tasks.models import ExtractorRef, TokenizerRef, extractor_for
from tasks.speech_codebook import current_speech_codebook
from tasks.speech_units import UnitSource, units_version_id
from tasks.train import TrainData, TrainSettings, units_tokenizer

#: Emitted when a codebook (image or speech) is published; retokenize-images is triggered by it.
CODEBOOK_EVENT = "im2sp.codebook.updated"


def tokenizer_ref(config: PipelineConfig, store: Store) -> TokenizerRef:
    """Resolve the configured tokenizer to a loadable reference.

    Without a checkpoint, a tokenizer that learns its codebook (patch-vq) uses the store's current codebook.

    Raises:
        Im2SpError: No checkpoint is configured and no codebook was learned yet.
    """
    section = config.image_tokenizer
    checkpoint = section.checkpoint
    if checkpoint is None and section.entry.learns_codebook:
        found = current_codebook(store)
        if found is None:
            raise Im2SpError("no image codebook yet: run learn-image-codebook first, or set image_tokenizer.checkpoint")
        checkpoint = found[1]
    return TokenizerRef(section.name, str(checkpoint or ""), config.device, section.settings())


def image_units_version_id(config: PipelineConfig, tokenizer_fingerprint: str) -> str:
    """Version id of image units: the tokenizer's fingerprint, plus the image preprocessing when not ``ours``.

    ``ours`` leaves the id as it always was, so every existing store keeps its version.
    """
    preprocess = config.image_tokenizer.image_preprocess
    if preprocess == "ours":
        return tokenizer_fingerprint
    return fingerprint({"tokenizer": tokenizer_fingerprint, "image_preprocess": preprocess})


def extractor_ref(config: PipelineConfig) -> ExtractorRef:
    """The configured extractor as a loadable reference."""
    speech = config.speech
    return ExtractorRef(speech.features, str(speech.checkpoint or ""), config.device, speech.settings())


def features_version_id(config: PipelineConfig, extractor_fingerprint: str) -> str:
    """Version id of speech features: the extractor plus what was kept (a different sample is a different store)."""
    speech = config.speech
    kept = (
        {"keep": speech.keep, "fraction": speech.sample_fraction, "seed": speech.seed}
        if speech.keep == "sample"
        else {"keep": "all"}
    )
    return fingerprint({"extractor": extractor_fingerprint, **kept, "chunk_seconds": speech.chunk_seconds})


@dataclass(frozen=True)
class SpeechUnitsPlan:
    """What unitize-speech would write now: the current codebook, where frames come from, the version id."""

    codebook_id: str
    clusters: int
    features_id: str
    source: UnitSource
    version_id: str


def speech_units_plan(config: PipelineConfig, store: Store) -> SpeechUnitsPlan:
    """Resolve the current speech codebook and the configured extractor to the speech-units version id.

    Raises:
        Im2SpError: No speech codebook yet, or one learned on another extractor's features.
    """
    found = current_speech_codebook(store)
    if found is None:
        raise Im2SpError("no speech codebook yet: run learn-speech-codebook first")
    codebook_id, centroids, meta = found
    ref = extractor_ref(config)
    extractor = extractor_for(ref)
    if meta.get("extractor_fingerprint") != extractor.fingerprint:
        raise Im2SpError(
            f"speech codebook {codebook_id} was learned on features of extractor {meta.get('extractor_fingerprint')}; "
            f"the config's extractor is {extractor.fingerprint}: run learn-speech-codebook, or import a matching one"
        )
    features_id = features_version_id(config, extractor.fingerprint)
    source = UnitSource(features_id, config.speech.keep, ref, config.speech.chunk_seconds)
    version_id = units_version_id(features_id, codebook_id, source.feature_dtype)
    return SpeechUnitsPlan(codebook_id, len(centroids), features_id, source, version_id)


def training_plan(config: PipelineConfig) -> tuple[TrainData, TrainSettings, tuple[int, int]]:
    """The data, settings and (image codebook size, K) of the training run the config describes.

    Raises:
        Im2SpError: A dataset has no training shards yet, or the datasets' codebook sizes or image tokenizers
            differ.
    """
    section = config.training
    store = config.store.open()
    versions = {}
    for dataset in config.selected(section.datasets):
        current = current_version(store, dataset, TRAINING_SHARDS)
        if current is None:
            raise Im2SpError(f"dataset {dataset!r} has no training shards yet; run build-training-shards first")
        versions[dataset] = current.version
    data = TrainData(versions, tuple(section.splits))
    settings = TrainSettings(
        steps=section.steps,
        batch_size=section.batch_size,
        grad_accum=section.grad_accum,
        lr=section.lr,
        weight_decay=section.weight_decay,
        warmup_steps=section.warmup_steps,
        freeze_image_encoder=section.freeze_image_encoder,
        max_units=section.max_units,
        seed=section.seed,
        model=MODEL_PRESETS[section.preset],
        git_checkpoint=str(section.checkpoint) if section.checkpoint else None,
        checkpoint_every=section.checkpoint_every,
        log_every=section.log_every,
    )
    units_tokenizer(store, data)  # one tokenizer made every dataset's image units, or no run at all
    return data, settings, _codebook_sizes(store, data)


def _codebook_sizes(store: Store, data: TrainData) -> tuple[int, int]:
    """The image codebook size and K shared by the training shards' unit stores."""
    image_sizes, speech_sizes = set(), set()
    for dataset, version_id in data.versions.items():
        joined = StoreVersion(store, dataset, TRAINING_SHARDS, version_id).info()["produced_by"]
        image = StoreVersion(store, dataset, IMAGE_UNITS, joined["image_units"]).info()["produced_by"]
        speech = StoreVersion(store, dataset, SPEECH_UNITS, joined["speech_units"]).info()["produced_by"]
        image_sizes.add(int(image["codebook_size"]))
        speech_sizes.add(int(speech["codebook_size"]))
    if len(image_sizes) != 1 or len(speech_sizes) != 1:
        raise Im2SpError(f"datasets use different codebook sizes (image {image_sizes}, speech {speech_sizes})")
    return image_sizes.pop(), speech_sizes.pop()
