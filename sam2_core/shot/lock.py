"""ShotLock: one process at a time on a shot folder; a second one is told who holds it."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

# a lock file is written within moments of being made: one that still says nothing after
# this long was left by a process that died in between
UNREADABLE_LOCK_STALE_AFTER = 10.0  # seconds


class ShotInUseError(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ShotLock:
    """A lock file created exclusively; a lock left by a process that died (same host) is
    taken over, since a crash must never leave a shot unusable."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / "lock"
        self.held = False

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder and holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1))):
                    self.path.unlink(missing_ok=True)  # its process is gone: a stale lock
                    continue
                if holder is None and self._age() > UNREADABLE_LOCK_STALE_AFTER:
                    # empty or damaged long after it was made: its process died (or the power
                    # went) between creating it and writing who holds it
                    self.path.unlink(missing_ok=True)
                    continue
                who = (f"process {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                       if holder else "another process")
                raise ShotInUseError(f"The shot {self.path.parent} is in use by {who}. Close it there first "
                                     f"(or, if that process is gone, delete {self.path}).") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise ShotInUseError(f"Could not lock the shot {self.path.parent}")

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
