"""Choosing the Prefect task runner from the ``runner`` section: threads here, or a Dask cluster."""

from __future__ import annotations

from typing import Any

from flows.config import RunnerConfig


def task_runner(runner: RunnerConfig, max_workers: int = 2) -> Any:
    """Return the task runner for a config: ``ThreadPoolTaskRunner`` or prefect-dask's ``DaskTaskRunner``.

    A Dask runner without an address starts a local cluster for the run (one worker process per core).
    """
    if runner.kind == "dask":
        from prefect_dask.task_runners import DaskTaskRunner

        if runner.address:
            return DaskTaskRunner(address=runner.address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": max_workers, "threads_per_worker": 1})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=max_workers)
