"""Run-length deduplication of unit sequences (the paper trains on units with consecutive repeats removed)."""

from __future__ import annotations

import numpy as np


def dedup(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(values, runs)``: each run's unit and its length, so ``expand(values, runs) == units``."""
    flat = np.asarray(units).reshape(-1)
    if flat.size == 0:
        return flat.copy(), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    runs = np.diff(np.concatenate((starts, [flat.size])))
    return flat[starts], runs.astype(np.int64)


def expand(values: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`dedup`."""
    return np.repeat(np.asarray(values), np.asarray(runs, dtype=np.int64))


def unit_entropy(units: np.ndarray) -> float:
    """Order-0 entropy of a unit sequence in bits per unit (0 for empty or constant sequences)."""
    if units.size == 0:
        return 0.0
    counts = np.bincount(np.asarray(units, dtype=np.int64).reshape(-1))
    p = counts[counts > 0] / units.size
    return float(-(p * np.log2(p)).sum())
