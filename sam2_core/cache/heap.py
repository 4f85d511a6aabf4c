"""The C library's heap between frames: freed blocks kept for the next frame, and given
back to the operating system when resident memory creeps up.

Tracking allocates and frees the same blocks on every frame: activations (hundreds of
MiB at input size 1024), features, memories, embeddings, resized frames. glibc, left to
itself, maps large blocks apart and unmaps them when freed, so each frame faulted its
activations in again (380,000 page faults a frame on a CPU at 1024, a tenth of the
time); and it keeps blocks of a few MiB inside its heap, where over a long shot the
resident memory creeps up although what the process holds does not (float32 on a CPU:
+15 % by frame 263). So large blocks stay in the heap (keep_large_blocks_for_reuse),
and the heap is trimmed now and then (give_back_free_memory) and when a run ends (trim).

Trimming hands the free pages back, but the next frame then faults them in again
(trimming after every frame: 45,000 page faults a frame at input size 512), and between
frames resident memory swings by a tenth with what the writer and reader threads hold at
that moment. So the heap is trimmed at most once a minute, and only when resident memory
has grown past the lowest it was since the last trim: a creep of a few MiB a minute
cannot build up, and the page faults cost under 1 % of a shot's time.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time


def _find_glibc(function: str):
    if not sys.platform.startswith("linux"):
        return None  # (other allocators give memory back by themselves)
    try:
        return getattr(ctypes.CDLL(None), function)  # the C library this process already runs on
    except (OSError, AttributeError):
        return None  # (a C library without it, such as musl)


_MALLOC_TRIM = _find_glibc("malloc_trim")
_MALLOPT = _find_glibc("mallopt")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # mallopt's parameters (malloc.h)
# glibc gives each thread that meets a busy heap a heap (arena) of its own, up to 8 per
# core, and memory freed in one arena is not reused by another: with the reader, writer
# and encoder threads, a long shot's peak crept up (input 512: +14 % from frame 160 to
# 240 with glibc's default; 0-3 % with 2 arenas, at the same speed)
ARENAS = 2
_reusing = False
GROWTH_BEFORE_TRIM = 0.05
TRIM_INTERVAL_S = 60.0
_clock = time.monotonic
_last_trim = -float("inf")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_lock = threading.Lock()
_settled: int | None = None  # resident bytes at the lowest point since the last trim


def resident_bytes() -> int:
    """The process's resident memory (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def keep_large_blocks_for_reuse() -> None:
    """Large blocks stay in the heap when freed, for the next frame to reuse (process-wide,
    once). glibc maps blocks over its threshold (at most 32 MiB) apart and unmaps them when
    freed, and gives back a heap top over 128 KiB: a frame's activations at input size
    1024 (hundreds of MiB) were faulted in again on every frame, 380,000 page faults a
    frame on a CPU, a tenth of its time. What the heap keeps is bounded by
    give_back_free_memory() between frames and trim() at the end of a run."""
    global _reusing
    if _MALLOPT is None or _MALLOC_TRIM is None or _reusing:
        return
    _reusing = True
    # (versions of glibc that refuse a threshold over 32 MiB get 32 MiB, fixed)
    if not _MALLOPT(_M_MMAP_THRESHOLD, 1 << 30):
        _MALLOPT(_M_MMAP_THRESHOLD, 32 << 20)
    _MALLOPT(_M_TRIM_THRESHOLD, 1 << 30)
    if "MALLOC_ARENA_MAX" not in os.environ:  # (the user's own choice stands)
        _MALLOPT(_M_ARENA_MAX, ARENAS)


def trim() -> None:
    """Return the allocator's free pages to the operating system (where it can)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def give_back_free_memory() -> None:
    """Called between frames (by any thread): trims the heap if resident memory has grown
    GROWTH_BEFORE_TRIM past the lowest it was since the last trim, and that trim was at
    least TRIM_INTERVAL_S ago."""
    global _settled, _last_trim
    if _MALLOC_TRIM is None:
        return
    now, resident = _clock(), resident_bytes()
    with _lock:
        if _settled is None or resident < _settled:
            _settled = resident
        if resident <= _settled * (1 + GROWTH_BEFORE_TRIM) or now - _last_trim < TRIM_INTERVAL_S:
            return
        _settled, _last_trim = None, now
    trim()
