"""TensorStore: named groups of tensors on disk, one file per entry, with a RAM window.

- Atomic: an entry is written to a temporary file, flushed to disk and renamed into
  place, so a crash leaves either the old entry or the new one, never a half.
- Checked: every file carries a digest of its payload; an entry that reads back wrong
  (a damaged disk, a file truncated by something else) is deleted and reported as
  missing, so the caller computes it again.
- Bounded: RAM holds the most recently used entries up to a byte budget; the disk may
  have a budget too, evicting least recently used entries except pinned ones.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import torch

log = logging.getLogger(__name__)

MAGIC = b"S2RC\x01"
DIGEST_SIZE = 32
SUFFIX = ".entry"


class CacheError(OSError):
    """The cache folder cannot be used; the message says which and what to do."""


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=DIGEST_SIZE).digest()


def encode_entry(tensors: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, buf)
    payload = buf.getvalue()
    return MAGIC + _digest(payload) + payload


def decode_entry(data: bytes) -> dict[str, torch.Tensor] | None:
    """The tensors of an entry, or None if the bytes are not a whole, intact entry."""
    head = len(MAGIC) + DIGEST_SIZE
    if len(data) < head or not data.startswith(MAGIC):
        return None
    payload = data[head:]
    if _digest(payload) != data[len(MAGIC):head]:
        return None
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception:
        return None


def nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


class TensorStore:
    def __init__(self, folder: str | Path, ram_budget: int = 512 << 20, disk_budget: int | None = None,
                 durable: bool = True):
        """durable: flush each entry to the disk before it counts as written (a power cut
        cannot lose it). Working data that a crash makes worthless anyway can skip that."""
        self.folder = Path(folder)
        self.durable = durable
        self.ram_budget = ram_budget
        self.disk_budget = disk_budget
        self._ram: OrderedDict[str, tuple[dict, int]] = OrderedDict()
        self._ram_bytes = 0
        self._pinned: set[str] = set()
        self._lock = threading.RLock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(e.errno, f"Cannot create the cache folder {self.folder}: {e.strerror}. "
                                      "Choose a writable cache folder.") from None
        # what is on disk: key -> (bytes, last use), oldest use first
        self._disk: OrderedDict[str, int] = OrderedDict()
        for path in sorted(self.folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_atime_ns):
            self._disk[path.name[: -len(SUFFIX)]] = path.stat().st_size
        self._disk_bytes = sum(self._disk.values())

    # -- keys ----------------------------------------------------------------------------

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def __contains__(self, key: str) -> bool:
        return key in self._ram or key in self._disk

    def keys(self) -> list[str]:
        return list(self._disk)

    def pin(self, key: str) -> None:
        """Never evict `key` from the disk (e.g. a frame the user prompted on)."""
        self._pinned.add(key)

    def unpin(self, key: str) -> None:
        self._pinned.discard(key)

    @property
    def disk_bytes(self) -> int:
        return self._disk_bytes

    # -- read / write --------------------------------------------------------------------

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        with self._lock:
            hit = self._ram.get(key)
            if hit is not None:
                self._ram.move_to_end(key)
                if key in self._disk:
                    self._disk.move_to_end(key)
                return hit[0]
            if key not in self._disk:
                return None
            path = self.path(key)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                self._forget_disk(key)
                return None
            tensors = decode_entry(data)
            if tensors is None:
                log.warning("Cache entry %s was damaged; it is removed and will be computed again.", path)
                self.delete(key)
                return None
            self._disk.move_to_end(key)
            self._remember(key, tensors)
            return tensors

    def put(self, key: str, tensors: dict[str, torch.Tensor], *, ram: bool = True) -> None:
        data = encode_entry(tensors)
        with self._lock:
            self._make_room(len(data), keep=key)
            self._write_atomically(self.path(key), data)
            self._forget_disk(key)
            self._disk[key] = len(data)
            self._disk_bytes += len(data)
            if ram:
                self._remember(key, {k: v.detach().cpu() for k, v in tensors.items()})
            else:
                self._forget_ram(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._forget_ram(key)
            self._forget_disk(key)
            self.path(key).unlink(missing_ok=True)

    def clear(self) -> None:
        """Delete every entry (pinned ones too)."""
        with self._lock:
            for key in list(self._disk):
                self.delete(key)
            for stray in self.folder.glob(".tmp-*"):
                stray.unlink(missing_ok=True)
            self._ram.clear()
            self._ram_bytes = 0

    # -- internals -----------------------------------------------------------------------

    def _write_atomically(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if self.durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:  # (Ctrl-C too: no temporary file is left behind)
            tmp.unlink(missing_ok=True)
            if not isinstance(e, OSError):
                raise
            why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                   errno.EROFS: "it is on a read-only file system",
                   errno.EACCES: "it is not writable", errno.EPERM: "it is not writable"}.get(e.errno, e.strerror)
            raise CacheError(e.errno, f"Cannot write to the cache folder {self.folder}: {why}. "
                                      "Free some space or choose another cache folder; "
                                      "what was already cached is intact.") from None

    def _make_room(self, incoming: int, keep: str) -> None:
        if self.disk_budget is None:
            return
        for key in list(self._disk):
            if self._disk_bytes + incoming <= self.disk_budget:
                break
            if key in self._pinned or key == keep:
                continue
            self.delete(key)

    def _remember(self, key: str, tensors: dict) -> None:
        size = nbytes(tensors)
        self._forget_ram(key)
        if size > self.ram_budget:
            return
        self._ram[key] = (tensors, size)
        self._ram_bytes += size
        while self._ram_bytes > self.ram_budget:
            _, (_, old) = self._ram.popitem(last=False)
            self._ram_bytes -= old

    def _forget_ram(self, key: str) -> None:
        old = self._ram.pop(key, None)
        if old is not None:
            self._ram_bytes -= old[1]

    def _forget_disk(self, key: str) -> None:
        old = self._disk.pop(key, None)
        if old is not None:
            self._disk_bytes -= old
