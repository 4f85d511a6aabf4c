"""The operating system's lock on an open file (flock; on Windows a byte-range lock): it goes
with its process, so a crash never leaves a file locked."""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

# Windows: the byte locked lies far past any text in the file, which others must still read
_WINDOWS_LOCK_OFFSET = 1 << 30


def try_lock(fd: int) -> bool:
    """Lock the open file `fd` for this process; False where another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # (BlockingIOError where another process holds it)
        return False
    return True


def unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
