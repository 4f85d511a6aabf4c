"""Small files written whole or not at all: a reader (or the next process, after a crash
or a power cut) sees the old file or the new one, never a half."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, flush it to the disk, then rename it
    onto `path`. On failure the temporary file is removed and `path` is as it was."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"  # (see is_leftover_of)
    # (0o666 less the umask, as any new file: mkstemp's 0o600 would hide a shared shot from others)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # (else the rename can reach the disk before the data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def is_leftover_of(name: str, filename: str) -> bool:
    """Whether the file `name` is a temporary file that a write of `filename` left when it
    was cut off."""
    return name.startswith(f".{filename}.") and name.endswith(".tmp")
