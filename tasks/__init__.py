"""Thin Prefect tasks: each wraps one plain function and returns a small reference, never arrays."""

from tasks.memory import limit_malloc_arenas

limit_malloc_arenas()
