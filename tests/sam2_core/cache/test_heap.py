"""Large blocks freed stay for the next frame; freed memory goes back to the operating system
when resident memory creeps up (at most once a minute) and when a run ends."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sam2_core.cache import heap

ROOT = Path(__file__).resolve().parents[3]


def resident_mib() -> float:
    return heap.resident_bytes() / 2**20


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
    heap.trim()
    after = resident_mib()
    assert before - after > 200  # most of the ~290 MiB freed is back with the system
    assert freed_but_resident - after > 100, (before, freed_but_resident, after)
    assert len(held) == 3000


def test_trims_when_resident_memory_creeps_and_at_most_once_an_interval(monkeypatch):
    calls, resident, clock = [], [1000 << 20], [5000.0]
    monkeypatch.setattr(heap, "_MALLOC_TRIM", lambda pad: calls.append(pad))
    monkeypatch.setattr(heap, "resident_bytes", lambda: resident[0])
    monkeypatch.setattr(heap, "_clock", lambda: clock[0])
    monkeypatch.setattr(heap, "_settled", None)
    monkeypatch.setattr(heap, "_last_trim", -float("inf"))

    def frame(mib, seconds=10.0):
        clock[0] += seconds
        resident[0] = mib << 20
        heap.give_back_free_memory()

    for mib in (1000, 1010, 990, 1030, 1035):  # a steady shot: its pages are reused, never faulted in again
        frame(mib)
    assert calls == []
    frame(1040)  # 5.05 % past the lowest (990): creeping
    assert calls == [0]
    frame(900)  # after the trim: where it settles now
    frame(1000)  # crept again, but the last trim was 10 s ago: its page faults would cost more than it gives
    assert calls == [0]
    frame(1000, heap.TRIM_INTERVAL_S)
    assert calls == [0, 0]
    frame(1000, heap.TRIM_INTERVAL_S)  # a minute later: where it settles after that trim, no creep
    assert calls == [0, 0]
    frame(1060, 1.0)
    assert calls == [0, 0, 0]


def test_no_trim_without_malloc_trim(monkeypatch):
    monkeypatch.setattr(heap, "_MALLOC_TRIM", None)
    monkeypatch.setattr(heap, "resident_bytes", lambda: pytest.fail("measured memory it cannot give back"))
    heap.give_back_free_memory()
    heap.trim()


FRAMES_IN_A_CHILD = """
import resource, sys, torch
from sam2_core.cache import heap
if sys.argv[1] == "reuse":
    heap.keep_large_blocks_for_reuse()

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def frame():  # activations of a few sizes, made and freed, as a frame's are: 192 MiB touched
    a = torch.ones(96 << 20, dtype=torch.uint8)
    b = torch.ones(64 << 20, dtype=torch.uint8)
    c = a[: 32 << 20] + b[: 32 << 20]
    del a, b, c

frame()
before = faults()
for _ in range(4):
    frame()
per_frame = (faults() - before) // 4
kept = heap.resident_bytes()
heap.trim()
print(per_frame, (kept - heap.resident_bytes()) >> 20)
"""


@pytest.mark.skipif(heap._MALLOPT is None or heap._MALLOC_TRIM is None, reason="needs glibc (Linux)")
@pytest.mark.parametrize("mode", ["reuse", "glibc's default"])
def test_large_blocks_are_reused_by_the_next_frame_and_given_back_by_a_trim(mode):
    # (in a child: the setting is for the whole process)
    out = subprocess.run([sys.executable, "-c", FRAMES_IN_A_CHILD, mode], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    faults_per_frame, given_back_mib = map(int, out.stdout.split())
    pages_per_frame = (192 << 20) // 4096
    if mode == "reuse":
        assert faults_per_frame < pages_per_frame / 10  # the pages of the last frame, used again
        assert given_back_mib > 150  # what the heap kept goes back when a run ends
    else:  # (what the setting is for: every frame faults its blocks in again)
        assert faults_per_frame > pages_per_frame * 0.9


ARENAS_IN_A_CHILD = """
import ctypes, os, sys, tempfile, threading
from sam2_core.cache import heap
if sys.argv[1] == "reuse":
    heap.keep_large_blocks_for_reuse()
held, together = [], threading.Barrier(12)
def work():
    held.append(bytearray(1 << 20))  # (a thread's first block comes from the arena it is given)
    together.wait()  # (all alive at once: a thread that ended hands its arena to the next)
threads = [threading.Thread(target=work) for _ in range(12)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile(suffix=".xml") as f:
    out = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(out))
    libc.fclose(ctypes.c_void_p(out))
    print(open(f.name).read().count("<heap nr="))
"""


@pytest.mark.skipif(heap._MALLOPT is None or heap._MALLOC_TRIM is None, reason="needs glibc (Linux)")
@pytest.mark.parametrize("mode", ["reuse", "glibc's default"])
def test_threads_share_a_few_heaps(mode):
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", ARENAS_IN_A_CHILD, mode], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    arenas = int(out.stdout)
    if mode == "reuse":
        assert arenas <= heap.ARENAS
    else:  # (what the setting is for: glibc gives threads arenas of their own)
        assert arenas > heap.ARENAS
