"""Freed memory goes back to the operating system, at most once a second."""

import numpy as np
import pytest

from sam2_core.cache import heap


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(heap._MALLOC_TRIM is None, reason="needs glibc's malloc_trim (Linux)")
def test_memory_freed_inside_the_heap_is_given_back():
    # blocks freed between blocks still held stay inside the heap: what a long shot does
    blocks, held = [], []
    for _ in range(3000):
        blocks.append(np.ones(100 << 10, np.uint8))  # 100 KiB: kept in the heap, not mapped apart
        held.append(np.ones(4096, np.uint8))  # (big enough for malloc, not Python's small-object pool)
    before = resident_mib()
    del blocks
    freed_but_resident = resident_mib()
    heap.give_back_free_memory(min_interval=0)
    after = resident_mib()
    assert before - after > 200  # most of the ~290 MiB freed is back with the system
    assert freed_but_resident - after > 100, (before, freed_but_resident, after)
    assert len(held) == 3000



def test_trims_at_most_once_an_interval(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "_MALLOC_TRIM", lambda pad: calls.append(pad))
    monkeypatch.setattr(heap, "_last_trim", -float("inf"))
    clock = [100.0]
    monkeypatch.setattr(heap, "_clock", lambda: clock[0])
    heap.give_back_free_memory()
    clock[0] += heap.TRIM_INTERVAL_S / 2
    heap.give_back_free_memory()  # too soon: a frame of a fast GPU does not pay for a trim
    assert calls == [0]
    clock[0] += heap.TRIM_INTERVAL_S / 2
    heap.give_back_free_memory()
    assert calls == [0, 0]
