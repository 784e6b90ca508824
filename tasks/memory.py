"""Keeping peak memory flat as datasets grow.

glibc gives each thread that allocates its own malloc arena (up to 8 × cores); the decode threads' large,
short-lived arrays then leave every arena holding freed memory, and peak RSS climbs shard after shard
(benchmarks/bench_memory.py: +31.6 % for 8× the images). Two arenas remove that growth (+0.0 %) at no
measurable cost here, so task processes set it once, before their thread pools start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_ARENA_MAX = -8  # from glibc's malloc.h
_done = False


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc malloc arenas for this process (no-op elsewhere); returns whether the cap was applied."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        _done = bool(ctypes.CDLL(name).mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return _done
