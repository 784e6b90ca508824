"""Where shard tasks run, from the ``runner`` section: threads in the flow's process, or a Dask cluster.

Every per-shard flow opens :func:`shard_runner` around its shard tasks, so the choice holds wherever the flow
runs: ``im2sp run``, a served deployment, or a subflow of the pipeline. With ``kind: dask`` and an
``address`` the tasks go to that cluster's workers (prefect-dask); without an address a ``LocalCluster`` of
``workers`` processes (one thread each), or the ``cluster_class`` named (e.g. dask-kubernetes'
``KubeCluster``), lives for the flow. Model tasks that run on a GPU (``device: cuda``) carry the Dask
resource annotation ``gpu_resources`` so the scheduler only gives them to workers started with that resource
(``dask worker --resources GPU=1``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from flows.config import PipelineConfig, RunnerConfig


def task_runner(runner: RunnerConfig) -> Any:
    """Return an unstarted task runner: ``ThreadPoolTaskRunner`` or prefect-dask's ``DaskTaskRunner``."""
    if runner.kind == "dask":
        from prefect_dask.task_runners import DaskTaskRunner

        if runner.address:
            return DaskTaskRunner(address=runner.address)
        if runner.cluster_class:
            return DaskTaskRunner(
                cluster_class=runner.cluster_class,
                cluster_kwargs=runner.cluster_kwargs,
                adapt_kwargs=runner.adapt or None,
            )
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": runner.workers, "threads_per_worker": 1, "dashboard_address": None},
            adapt_kwargs=runner.adapt or None,
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=runner.workers)


class ShardRunner:
    """A started task runner that shard tasks are submitted to (see :func:`shard_runner`)."""

    def __init__(self, runner: Any, resources: dict[str, float] | None) -> None:
        self._runner = runner
        self._resources = resources

    def bind(self, task: Any, **fixed: Any) -> Callable[..., Any]:
        """Return ``submit(**parameters)`` running ``task`` with ``fixed`` and the given parameters."""

        def submit(**parameters: Any) -> Any:
            with self._annotations():
                return self._runner.submit(task, {**fixed, **parameters})

        return submit

    def _annotations(self) -> contextlib.AbstractContextManager[Any]:
        if not self._resources:
            return contextlib.nullcontext()
        from dask.base import annotate

        return annotate(resources=self._resources)


@contextlib.contextmanager
def shard_runner(config: PipelineConfig, *, uses_device: bool = False) -> Iterator[ShardRunner]:
    """Start the configured runner for a flow's shard tasks; stop it (and a local cluster) on exit.

    Args:
        config: The pipeline config (its ``runner`` and ``device`` sections).
        uses_device: Whether the tasks run a model on ``config.device``; on a Dask cluster with
            ``device: cuda`` they then ask for ``runner.gpu_resources``.
    """
    with task_runner(config.runner) as started:
        yield ShardRunner(started, gpu_annotation(config, uses_device=uses_device))


def gpu_annotation(config: PipelineConfig, *, uses_device: bool) -> dict[str, float] | None:
    """The Dask resources a flow's shard tasks ask for: ``runner.gpu_resources`` for model tasks on CUDA."""
    runner = config.runner
    if uses_device and runner.kind == "dask" and config.device == "cuda" and runner.gpu_resources:
        return dict(runner.gpu_resources)
    return None
