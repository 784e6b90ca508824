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
