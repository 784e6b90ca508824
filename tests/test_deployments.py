from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from prefect.flows import load_flow_from_entrypoint

from flows.registry import FLOWS

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_matches_the_flow_registry() -> None:
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployed = {}
    for deployment in document["deployments"]:
        path, _, attribute = deployment["entrypoint"].partition(":")
        flow: Any = load_flow_from_entrypoint(f"{ROOT / path}:{attribute}")  # as a worker loads it
        assert flow.name == deployment["name"], "a deployment is named like its flow"
        deployed[deployment["name"]] = flow
    assert set(deployed) == set(FLOWS)


def test_prefect_yaml_is_generated_from_the_registry() -> None:
    """prefect.yaml is ``python -m flows.deployments_yaml`` output: descriptions, schedules and triggers included."""
    from flows.deployments_yaml import deployments, render

    committed = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert committed["deployments"] == deployments(), "regenerate: python -m flows.deployments_yaml > prefect.yaml"
    assert yaml.safe_load(render()) == committed


def test_a_new_flow_is_its_module_plus_one_entry(monkeypatch: Any) -> None:
    """The recipe of docs/EXTENDING.md: a flow module and one registry entry reach serve, run and prefect.yaml."""
    from prefect import flow
    from rich.console import Console

    from flows import registry, serve
    from flows.config import parse_config
    from flows.deployments_yaml import deployments

    @flow(name="count-datasets", description="How many datasets the config names.")
    def count_datasets_flow(config: Any) -> int:
        return len(config.datasets)

    entry = registry.FlowEntry(count_datasets_flow, lambda n: [f"{n} dataset(s)"])
    monkeypatch.setattr(registry, "ENTRIES", (*registry.ENTRIES, entry))
    monkeypatch.setattr(serve, "ENTRIES", registry.ENTRIES)
    monkeypatch.setattr("flows.deployments_yaml.ENTRIES", registry.ENTRIES)
    config = parse_config({"datasets": {"coco": {"kind": "coco", "root": "coco"}}}, base=ROOT)
    assert registry.get_flow("count-datasets") is count_datasets_flow
    assert [d.name for d in serve.build_deployments(config)][-1] == "count-datasets"
    assert deployments()[-1]["description"] == "How many datasets the config names."
    console = Console(record=True, width=80)
    registry.render_results(console, "count-datasets", count_datasets_flow.fn(config))
    assert console.export_text().strip() == "1 dataset(s)"


#: Every deployment runs one flow run at a time; a run that finds one running waits in the queue (object stores
#: have no shard locks, docs/RELIABILITY.md).
ONE_AT_A_TIME = {"limit": 1, "collision_strategy": "ENQUEUE"}


def _config() -> Any:
    from flows.config import parse_config

    return parse_config({"datasets": {"coco": {"kind": "coco", "root": "coco"}}}, base=ROOT)


def test_every_served_deployment_runs_one_flow_run_at_a_time() -> None:
    from flows.serve import build_deployments

    served = build_deployments(_config())
    assert {d.name for d in served} == set(FLOWS)
    for deployment in served:
        assert deployment.concurrency_limit == 1, deployment.name
        assert deployment.concurrency_options is not None, deployment.name
        assert deployment.concurrency_options.collision_strategy == "ENQUEUE", deployment.name
        # Loaded by module: Dask workers must be able to import what a flow run pickles (tests/test_compose.py)
        assert deployment.entrypoint.startswith("flows.") and ":" not in deployment.entrypoint, deployment.entrypoint


def test_every_prefect_yaml_deployment_runs_one_flow_run_at_a_time() -> None:
    """The committed prefect.yaml carries the limit in the form ``prefect deploy`` reads."""
    from prefect.cli.deploy._models import PrefectYamlModel

    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert {d["name"] for d in document["deployments"]} == set(FLOWS)
    for deployment in document["deployments"]:
        assert deployment.get("concurrency_limit") == ONE_AT_A_TIME, deployment["name"]
    for parsed in PrefectYamlModel.model_validate(document).deployments:
        assert parsed.concurrency_limit is not None
        assert parsed.concurrency_limit.model_dump(exclude_none=True) == ONE_AT_A_TIME  # type: ignore[union-attr]


def test_a_served_deployment_registers_its_limit_with_the_server(prefect_harness: None) -> None:
    """Read back through the API: the server, not only the Python object, enforces one run at a time."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy
    from prefect.client.schemas.responses import DeploymentResponse

    from flows.serve import build_deployments

    deployment = next(d for d in build_deployments(_config()) if d.name == "retokenize-images")

    async def registered() -> DeploymentResponse:
        deployment_id = await deployment.apply()
        async with get_client() as client:
            return await client.read_deployment(deployment_id)

    read = asyncio.run(registered())
    assert read.global_concurrency_limit is not None and read.global_concurrency_limit.limit == 1
    assert read.concurrency_options is not None
    assert read.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
