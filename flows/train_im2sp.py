"""Flow ``train-im2sp``: train the unit GiT on the current training shards, checkpointing into the store.

A run is identified by its settings and the training-shards versions; calling the flow again continues the
same run from its newest checkpoint (after a crash, or after ``stop_after`` ended a time-boxed call). Metrics
(loss, unit accuracy, samples/s, learning rate) become a table artifact and a markdown artifact with the
loss curve.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.config import MODEL_PRESETS, PipelineConfig
from flows.tokenize_images import tokenizer_ref
from storage.errors import CorruptShardError, Im2SpError, NotCommittedError, UnsupportedFormatError
from storage.kinds import IMAGE_UNITS, SPEECH_UNITS, TRAINING_SHARDS
from storage.versions import StoreVersion, current_version
from tasks.train import TrainData, TrainResult, TrainSettings, train_task


def _sizes(config: PipelineConfig, data: TrainData) -> tuple[int, int]:
    store = config.store.open()
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


def loss_chart(history: list[dict[str, float]]) -> bytes:
    """PNG of loss and unit accuracy against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, left = plt.subplots(figsize=(7, 3.5), dpi=100)
    steps = [row["step"] for row in history]
    left.plot(steps, [row["loss"] for row in history], color="#2563eb", label="loss")
    left.set_xlabel("step")
    left.set_ylabel("loss (nats per unit)")
    right = left.twinx()
    right.plot(steps, [row["unit_accuracy"] for row in history], color="#16a34a", label="unit accuracy")
    right.set_ylabel("unit accuracy")
    figure.legend(loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def training_plan(config: PipelineConfig) -> tuple[TrainData, TrainSettings, tuple[int, int]]:
    """The data, settings and (image codebook size, K) of the run the config describes.

    Raises:
        Im2SpError: A dataset has no training shards yet, or the datasets' codebook sizes differ.
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
    return data, settings, _sizes(config, data)


@flow(name="train-im2sp")
def train_im2sp_flow(config: PipelineConfig, stop_after: int | None = None) -> TrainResult:
    """Train (or continue training) the image-unit → speech-unit model; ``stop_after`` caps this call's steps."""
    logger = get_run_logger()
    store = config.store.open()
    data, settings, (image_codebook_size, speech_units) = training_plan(config)
    try:
        tokenizer: Any = tokenizer_ref(config, store)
    except (CorruptShardError, NotCommittedError, UnsupportedFormatError):
        raise  # a damaged codebook (pointer, marker or files) is not "no codebook": the run would lose its vectors
    except Im2SpError:
        tokenizer = None
    result = train_task(
        config.store.url,
        config.store.options,
        data,
        settings,
        image_codebook_size,
        speech_units,
        tokenizer,
        config.device,
        stop_after,
    )
    history = result.history
    if history:
        first, last = history[0], history[-1]
        logger.info(
            "run %s: step %d (resumed from %d), loss %.3f → %.3f, unit accuracy %.3f → %.3f",
            result.run_id,
            result.step,
            result.resumed_from,
            first["loss"],
            last["loss"],
            first["unit_accuracy"],
            last["unit_accuracy"],
        )
        create_table_artifact(key="train-im2sp-metrics", table=history, description=f"Run {result.run_id}")
        chart = base64.b64encode(loss_chart(history)).decode()
        create_markdown_artifact(
            key="train-im2sp-summary",
            markdown=(
                f"# train-im2sp run {result.run_id}\n\nStep {result.step} of {settings.steps} (this call resumed "
                f"from {result.resumed_from}); checkpoints in `{result.url}`.\n\n"
                f"![loss](data:image/png;base64,{chart})\n"
            ),
            description="Loss curve and where the checkpoints are",
        )
    return result
