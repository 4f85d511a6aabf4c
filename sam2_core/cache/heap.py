"""Freed memory goes back to the operating system.

Tracking allocates and frees blocks of a few MiB on every frame (features, memories,
conditioned embeddings, resized frames). The C library's allocator keeps such freed
blocks inside its heap (glibc raises its threshold for separate mappings to 32 MiB after
the first large block is freed), so over a long shot the process's resident memory
creeps up although what it holds does not. Trimming after each frame hands the free
pages back: it costs well under a millisecond when little was freed.
"""

from __future__ import annotations

import ctypes
import sys


def _find_malloc_trim():
    if not sys.platform.startswith("linux"):
        return None  # (other allocators give memory back by themselves)
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library this process already runs on
    except (OSError, AttributeError):
        return None  # (a C library without it, such as musl)


_MALLOC_TRIM = _find_malloc_trim()


def give_back_free_memory() -> None:
    """Return the allocator's free pages to the operating system, where it can."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
