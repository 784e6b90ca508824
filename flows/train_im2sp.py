"""Flow ``train-im2sp``: train the unit GiT on the current training shards, checkpointing into the store.

A run is identified by its settings and the training-shards versions; calling the flow again continues the
same run from its newest checkpoint (after a crash, or after ``stop_after`` ended a time-boxed call). Metrics
(loss, unit accuracy, samples/s, learning rate) become a table artifact and a markdown artifact with the
loss curve.
"""

from __future__ import annotations

import base64
import io

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.config import PipelineConfig
from flows.plans import training_plan
from tasks.models import TokenizerRef
from tasks.train import TrainResult, Vocabulary, train_task


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


@flow(name="train-im2sp")
def train_im2sp_flow(config: PipelineConfig, stop_after: int | None = None) -> TrainResult:
    """Train (or continue training) the image-unit → speech-unit model; ``stop_after`` caps this call's steps."""
    logger = get_run_logger()
    store_ref = config.store.ref()
    data, settings, (image_codebook_size, speech_units) = training_plan(config)
    section = config.image_tokenizer
    # Only its device and settings (and checkpoint, when of the same kind): the unit embeddings start from the
    # tokenizer that made the training shards' units, found by their lineage (tasks.train.lineage_tokenizer).
    configured = TokenizerRef(section.name, str(section.checkpoint or ""), config.device, section.settings())
    vocabulary = Vocabulary(image_codebook_size, speech_units, configured)
    result = train_task(store_ref, data, settings, vocabulary, config.device, stop_after)
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
