from __future__ import annotations

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
    from flows.console import render_results
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
    render_results(console, "count-datasets", count_datasets_flow.fn(config))
    assert console.export_text().strip() == "1 dataset(s)"
