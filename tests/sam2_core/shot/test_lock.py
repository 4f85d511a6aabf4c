"""ShotLock: a live holder keeps the shot; a lock its process left behind is taken over."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from sam2_core.shot.lock import UNREADABLE_LOCK_STALE_AFTER, ShotInUseError, ShotLock


def test_a_live_holder_keeps_the_shot_and_a_dead_one_does_not(tmp_path):
    held = ShotLock(tmp_path)
    held.acquire()
    with pytest.raises(ShotInUseError, match=f"in use by process {os.getpid()}"):
        ShotLock(tmp_path).acquire()
    held.release()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "lock").write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname()}))
    taker = ShotLock(tmp_path)
    taker.acquire()
    assert taker.held and json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()


def test_a_lock_left_empty_is_taken_over_once_it_is_old(tmp_path):
    lock = tmp_path / "lock"
    lock.write_text("")  # a process died between making the file and writing to it
    with pytest.raises(ShotInUseError, match="another process"):  # (it may be writing now)
        ShotLock(tmp_path).acquire()
    old = time.time() - UNREADABLE_LOCK_STALE_AFTER - 1
    os.utime(lock, (old, old))
    taker = ShotLock(tmp_path)
    taker.acquire()
    assert taker.held and json.loads(lock.read_text())["pid"] == os.getpid()
