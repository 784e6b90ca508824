"""Every flow, by its user-facing name (flow name = deployment name): one entry per flow.

An entry says what ``im2sp serve`` and ``prefect.yaml`` deploy (the flow, its description, an event trigger, a
cron schedule from the config) and what ``im2sp run`` prints when it ends (``flows/summaries.py``). Every
deployment runs one flow run at a time (``RUNS_AT_A_TIME``, ``COLLISION_STRATEGY``). Adding a
flow is its module plus one entry here; ``prefect.yaml`` is generated from these entries
(``python -m flows.deployments_yaml > prefect.yaml``, checked by ``tests/test_deployments.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, RenderableType

from flows import summaries
from flows.build_manifests import build_manifests_flow
from flows.build_training_shards import build_training_shards_flow
from flows.config import PipelineConfig
from flows.evaluate_im2sp import evaluate_im2sp_flow
from flows.extract_speech_features import extract_speech_features_flow
from flows.learn_image_codebook import learn_image_codebook_flow
from flows.learn_speech_codebook import learn_speech_codebook_flow
from flows.pipeline import pipeline_flow
from flows.plans import CODEBOOK_EVENT
from flows.report import storage_report_flow
from flows.retokenize_images import retokenize_images_flow
from flows.tokenize_images import tokenize_images_flow
from flows.train_im2sp import train_im2sp_flow
from flows.train_vocoder import train_vocoder_flow
from flows.unitize_speech import unitize_speech_flow
from storage.errors import UsageError

#: Flow runs of one deployment at a time: on an object store shards have no lock (``storage/locks.py``), so a
#: deployment must never overlap itself (retokenize-images has both a cron and an event trigger).
RUNS_AT_A_TIME = 1
#: What Prefect does with a run that would exceed ``RUNS_AT_A_TIME``: it waits for the running one, never dropped.
COLLISION_STRATEGY = "ENQUEUE"


@dataclass(frozen=True)
class EventTrigger:
    """Start the flow when ``event`` is emitted; ``parameters`` are templated from the event (Prefect's syntax)."""

    name: str
    event: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowEntry:
    """One flow as users see it: deployed under its name, summarised when ``im2sp run`` ends."""

    flow: Any
    summary: Callable[[Any], list[RenderableType]]
    trigger: EventTrigger | None = None
    cron: Callable[[PipelineConfig], str] | None = None

    @property
    def name(self) -> str:
        """The flow's name, which is also its deployment's name."""
        return str(self.flow.name)

    @property
    def description(self) -> str:
        """The flow's description (its docstring's first line unless the decorator gave one)."""
        return str(self.flow.description or "")


ENTRIES: tuple[FlowEntry, ...] = (
    FlowEntry(build_manifests_flow, summaries.manifests),
    FlowEntry(learn_image_codebook_flow, summaries.image_codebook),
    FlowEntry(tokenize_images_flow, summaries.image_units),
    FlowEntry(extract_speech_features_flow, summaries.stage_units("extract-speech-features")),
    FlowEntry(learn_speech_codebook_flow, summaries.speech_codebook),
    FlowEntry(unitize_speech_flow, summaries.stage_units("unitize-speech")),
    FlowEntry(train_vocoder_flow, summaries.vocoder),
    FlowEntry(
        retokenize_images_flow,
        summaries.retokenized,
        trigger=EventTrigger(
            "codebook-updated",
            CODEBOOK_EVENT,
            {"codebook_id": "{{ event.payload.codebook_id }}", "kind": "{{ event.payload.kind }}"},
        ),
        cron=lambda config: config.retokenize.cron,
    ),
    FlowEntry(build_training_shards_flow, summaries.stage_units("build-training-shards")),
    FlowEntry(train_im2sp_flow, summaries.training),
    FlowEntry(evaluate_im2sp_flow, summaries.evaluation),
    FlowEntry(storage_report_flow, summaries.storage),
    FlowEntry(pipeline_flow, summaries.nothing),
)

#: Flows by name, in the order of ``ENTRIES``.
FLOWS: dict[str, Any] = {entry.name: entry.flow for entry in ENTRIES}
#: The flow that runs every stage and returns their results by stage name.
PIPELINE = "im2sp-pipeline"


def get_entry(name: str) -> FlowEntry:
    """Return the entry of a flow name.

    Raises:
        UsageError: If no flow has that name (the message lists the known names).
    """
    for entry in ENTRIES:
        if entry.name == name:
            return entry
    raise UsageError(f"unknown flow {name!r}; known flows: {', '.join(sorted(FLOWS))}")


def get_flow(name: str) -> Callable[..., Any]:
    """Return the flow of a name.

    Raises:
        UsageError: If no flow has that name (the message lists the known names).
    """
    flow: Callable[..., Any] = get_entry(name).flow
    return flow


def render_results(console: Console, flow_name: str, results: Any) -> None:
    """Print what a flow returned, as its registry entry summarises it (each stage of the pipeline in turn)."""
    stages = results if isinstance(results, dict) and flow_name == PIPELINE else {flow_name: results}
    for stage, value in stages.items():
        for renderable in get_entry(stage).summary(value):
            console.print(renderable)
