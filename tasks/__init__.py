"""Thin Prefect tasks: each wraps one plain function and returns a small reference, never arrays."""
