"""``im2sp serve``: every flow as a deployment named like the flow, with the config as default parameters.

retokenize-images also gets its triggers: a ``DeploymentEventTrigger`` on ``im2sp.codebook.updated`` (the
payload's codebook id and kind become parameters) and the cron schedule ``retokenize.cron`` as a safety net.
The served process polls the Prefect API for scheduled runs every ``PREFECT_RUNNER_POLL_FREQUENCY`` seconds
(Prefect's default 10) and runs each in a subprocess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.config import PipelineConfig, load_config
from flows.learn_image_codebook import CODEBOOK_EVENT
from flows.registry import FLOWS

RETOKENIZE = "retokenize-images"


def build_deployments(config: PipelineConfig) -> list[Any]:
    """One runner deployment per flow, named like it; retokenize-images with its event trigger and cron."""
    from prefect.events import DeploymentEventTrigger

    parameters = {"config": config.model_dump(mode="json")}
    deployments = []
    for name, flow in FLOWS.items():
        options: dict[str, Any] = {}
        if name == RETOKENIZE:
            options["triggers"] = [
                DeploymentEventTrigger(
                    name="codebook-updated",
                    expect={CODEBOOK_EVENT},
                    # merged with the deployment's parameters (the config) when the run is created
                    parameters={"codebook_id": "{{ event.payload.codebook_id }}", "kind": "{{ event.payload.kind }}"},
                )
            ]
            options["cron"] = config.retokenize.cron
        deployments.append(
            flow.to_deployment(name=name, parameters=parameters, description=flow.description, **options)
        )
    return deployments


def serve(config_path: Path) -> None:
    """Register every deployment with the Prefect API and run their flow runs until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(load_config(config_path)))
