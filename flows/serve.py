"""``im2sp serve``: every flow as a deployment named like the flow, with the config as default parameters.

Triggers and schedules come from the flow registry (``flows/registry.py``): retokenize-images starts on
``im2sp.codebook.updated`` (the payload's codebook id and kind become parameters) and on ``retokenize.cron``.
Each deployment runs one flow run at a time (``RUNS_AT_A_TIME`` in the registry); a run that would overlap the
running one waits for it (``ENQUEUE``). The served process polls the Prefect API for scheduled runs every
``PREFECT_RUNNER_POLL_FREQUENCY`` seconds (Prefect's default 10) and runs each in a subprocess.
"""

from __future__ import annotations

from typing import Any

from flows.config import PipelineConfig
from flows.registry import COLLISION_STRATEGY, ENTRIES, RUNS_AT_A_TIME


def build_deployments(config: PipelineConfig) -> list[Any]:
    """One runner deployment per registry entry, named like its flow, with the entry's trigger and schedule."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.events import DeploymentEventTrigger
    from prefect.types.entrypoint import EntrypointType

    parameters = {"config": config.model_dump(mode="json")}
    one_at_a_time = ConcurrencyLimitConfig(
        limit=RUNS_AT_A_TIME, collision_strategy=ConcurrencyLimitStrategy(COLLISION_STRATEGY)
    )
    deployments = []
    for entry in ENTRIES:
        options: dict[str, Any] = {"concurrency_limit": one_at_a_time}
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
        # By module (flows.tokenize_images.…), not by file: a flow run loaded from a file path is the module
        # `tokenize_images`, which the Dask workers that unpickle its shard tasks cannot import.
        options["entrypoint_type"] = EntrypointType.MODULE_PATH
        deployments.append(
            entry.flow.to_deployment(name=entry.name, parameters=parameters, description=entry.description, **options)
        )
    return deployments


def serve(config: PipelineConfig) -> None:
    """Register every deployment with the Prefect API and run their flow runs until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(config))
