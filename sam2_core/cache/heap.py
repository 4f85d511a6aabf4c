"""Freed memory goes back to the operating system.

Tracking allocates and frees blocks of a few MiB on every frame (features, memories,
conditioned embeddings, resized frames). The C library's allocator keeps such freed
blocks inside its heap (glibc raises its threshold for separate mappings to 32 MiB after
the first large block is freed), so over a long shot the process's resident memory
creeps up although what it holds does not. Trimming hands the free pages back, but it
walks the whole heap: several milliseconds with a tracker's heap (4-18 ms measured on a
2-core CPU), as long as a GPU takes for part of a frame. So it runs at most once a
second: under 1 % of the time on any machine, and a long shot still cannot creep.
"""

from __future__ import annotations

import ctypes
import sys
import time


def _find_malloc_trim():
    if not sys.platform.startswith("linux"):
        return None  # (other allocators give memory back by themselves)
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library this process already runs on
    except (OSError, AttributeError):
        return None  # (a C library without it, such as musl)


_MALLOC_TRIM = _find_malloc_trim()
TRIM_INTERVAL_S = 1.0
_last_trim = -float("inf")
_clock = time.monotonic


def give_back_free_memory(min_interval: float = TRIM_INTERVAL_S) -> None:
    """Return the allocator's free pages to the operating system, where it can, unless
    that was done less than `min_interval` seconds ago (by any thread)."""
    global _last_trim
    now = _clock()
    if _MALLOC_TRIM is None or now - _last_trim < min_interval:
        return
    _last_trim = now
    _MALLOC_TRIM(0)
