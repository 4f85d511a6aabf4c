"""ShotLock: a live holder keeps the shot; a process that dies lets it go; of several
processes (or threads) taking it at once, one gets it."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sam2_core.shot.lock import ShotInUseError, ShotLock
from sam2_core.shot.shot import Shot
from tests.sam2_core.tracking.conftest import write_png_clip

ROOT = Path(__file__).resolve().parents[3]


def test_a_live_holder_keeps_the_shot_until_it_lets_go(tmp_path):
    held = ShotLock(tmp_path)
    held.acquire()
    with pytest.raises(ShotInUseError, match=f"in use by process {os.getpid()} on {socket.gethostname()}"):
        ShotLock(tmp_path).acquire()
    assert held.held
    held.release()
    assert not (tmp_path / "lock").exists()
    again = ShotLock(tmp_path)
    again.acquire()
    assert again.held and json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    again.release()


def test_a_lock_file_left_behind_is_no_obstacle(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for leftover in (json.dumps({"pid": int(gone.stdout), "host": socket.gethostname()}), ""):
        (tmp_path / "lock").write_text(leftover)  # (empty: a process died before writing to it)
        taker = ShotLock(tmp_path)
        taker.acquire()
        assert taker.held and json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
        taker.release()


def test_a_holder_killed_lets_the_shot_go_at_once(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time; from sam2_core.shot.lock import ShotLock; "
                               f"ShotLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ShotInUseError, match=f"process {holder.pid}"):
            ShotLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    taker = ShotLock(tmp_path)
    taker.acquire()  # its file is still there; its lock went with it
    assert taker.held
    taker.release()


def _take_together(folder, start: threading.Barrier, got: list) -> None:
    lock = ShotLock(folder)
    start.wait()
    try:
        lock.acquire()
    except ShotInUseError:
        return
    got.append(lock)


def test_of_many_taking_a_leftover_lock_at_once_one_gets_it(tmp_path):
    for _ in range(20):
        (tmp_path / "lock").write_text(json.dumps({"pid": 999999999, "host": socket.gethostname()}))
        start, got = threading.Barrier(6), []
        threads = [threading.Thread(target=_take_together, args=(tmp_path, start, got)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 1
        got[0].release()


def test_two_creates_of_one_shot_never_both_succeed(tmp_path, monkeypatch):
    """B looks for an existing shot, then A creates and closes it before B takes the lock:
    B must not write its manifest over A's."""
    plate = tmp_path / "plate"
    plate.mkdir()
    write_png_clip(plate, 2)
    folder = tmp_path / "shot"
    real_acquire = ShotLock.acquire
    first = []

    def acquire_after_another_create(self):
        if not first:
            first.append(True)
            Shot.create(folder, plate, model={"name": "A"}).close()
        real_acquire(self)

    monkeypatch.setattr(ShotLock, "acquire", acquire_after_another_create)
    with pytest.raises(FileExistsError, match="already a shot"):
        Shot.create(folder, plate, model={"name": "B"})
    assert json.loads((folder / "shot.json").read_text())["model"] == {"name": "A"}
    assert not (folder / "lock").exists()


def test_a_shot_opened_while_another_saves_it_reads_what_was_saved(tmp_path, monkeypatch):
    plate = tmp_path / "plate"
    plate.mkdir()
    write_png_clip(plate, 2)
    folder = tmp_path / "shot"
    Shot.create(folder, plate).close()
    real_acquire = ShotLock.acquire
    first = []

    def acquire_after_another_save(self):
        if not first:  # (another process adds an object and closes the shot meanwhile)
            first.append(True)
            other = Shot.open(folder)
            other.object("ball")
            other.save()
            other.close()
        real_acquire(self)

    monkeypatch.setattr(ShotLock, "acquire", acquire_after_another_save)
    shot = Shot.open(folder)
    try:
        assert [o.name for o in shot.manifest.objects] == ["ball"]
    finally:
        shot.close()
