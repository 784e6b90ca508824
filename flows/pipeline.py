"""Flow ``im2sp-pipeline``: the whole DAG in order (the demo runs this)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.build_manifests import build_manifests_flow
from flows.config import PipelineConfig


@flow(name="im2sp-pipeline")
def pipeline_flow(config: PipelineConfig) -> dict[str, Any]:
    """Run every implemented stage in order and return each stage's results by flow name."""
    return {"build-manifests": build_manifests_flow(config)}
