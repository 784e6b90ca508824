from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from flows.registry import FLOWS

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_matches_the_flow_registry() -> None:
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployed = {}
    for deployment in document["deployments"]:
        path, _, attribute = deployment["entrypoint"].partition(":")
        spec = importlib.util.spec_from_file_location(f"entry_{deployment['name']}", ROOT / path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        flow = getattr(module, attribute)
        assert flow.name == deployment["name"], "a deployment is named like its flow"
        deployed[deployment["name"]] = flow
    assert set(deployed) == set(FLOWS)
