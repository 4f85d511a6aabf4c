"""ShotLock: one process at a time on a shot folder; a second one is told who holds it.

The lock is the operating system's lock on the file `SHOT/lock` (flock; on Windows a
byte-range lock), so it goes with its process: a crash never leaves a shot locked, and
two processes that find the same leftover file cannot both take it. The file's text
(process, host, time) only tells the next process who holds it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from ..file_lock import try_lock, unlock

LOCK_FILE = "lock"


class ShotInUseError(RuntimeError):
    pass


class ShotLock:
    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not try_lock(fd):
                os.close(fd)
                holder = self._holder()
                who = (f"process {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                       if holder else "another process")
                raise ShotInUseError(f"The shot {self.path.parent} is in use by {who}. Close it there first.")
            if self._still_the_lock_file(fd):
                break
            os.close(fd)  # its holder let it go and removed it meanwhile: lock the new one
        else:
            raise ShotInUseError(f"Could not lock the shot {self.path.parent}: other processes keep taking it.")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me).encode())
        self._fd = fd

    def _still_the_lock_file(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # removed while still locked, so that no one locks the file on its way out (on
        # Windows, where an open file cannot be removed, after it is closed)
        with contextlib.suppress(OSError):
            self.path.unlink()
        unlock(fd)
        os.close(fd)
        if os.name == "nt":
            with contextlib.suppress(OSError):
                self.path.unlink()
