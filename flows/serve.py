"""``im2sp serve``: every flow as a deployment named like the flow, with the config as default parameters.

Triggers and schedules come from the flow registry (``flows/registry.py``): retokenize-images starts on
``im2sp.codebook.updated`` (the payload's codebook id and kind become parameters) and on ``retokenize.cron``.
The served process polls the Prefect API for scheduled runs every ``PREFECT_RUNNER_POLL_FREQUENCY`` seconds
(Prefect's default 10) and runs each in a subprocess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.config import PipelineConfig, load_config
from flows.registry import ENTRIES


def build_deployments(config: PipelineConfig) -> list[Any]:
    """One runner deployment per registry entry, named like its flow, with the entry's trigger and schedule."""
    from prefect.events import DeploymentEventTrigger

    parameters = {"config": config.model_dump(mode="json")}
    deployments = []
    for entry in ENTRIES:
        options: dict[str, Any] = {}
        if entry.trigger is not None:
            options["triggers"] = [
                DeploymentEventTrigger(
                    name=entry.trigger.name,
                    expect={entry.trigger.event},
                    # merged with the deployment's parameters (the config) when the run is created
                    parameters=dict(entry.trigger.parameters),
                )
            ]
        if entry.cron is not None:
            options["cron"] = entry.cron(config)
        deployments.append(
            entry.flow.to_deployment(name=entry.name, parameters=parameters, description=entry.description, **options)
        )
    return deployments


def serve(config_path: Path) -> None:
    """Register every deployment with the Prefect API and run their flow runs until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(load_config(config_path)))
