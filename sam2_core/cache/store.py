"""TensorStore: named groups of tensors on disk, one file per entry, with a RAM window.

- Atomic: an entry is written to a temporary file, flushed to disk and renamed into
  place, so a crash leaves either the old entry or the new one, never a half.
- Checked: every file carries a digest of its payload; an entry that reads back wrong
  (a damaged disk, a file truncated by something else) is deleted and reported as
  missing, so the caller computes it again.
- Bounded: memory holds the most recently used entries up to a byte budget, as they
  were put (on the GPU if they came from it, so that reading a recent entry copies
  nothing); the disk may have a budget too, evicting least recently used entries except
  pinned ones.
- Written behind, if asked: a writer thread takes the disk writes off the caller's path.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import queue
import struct
import threading
import time
import weakref
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

MAGIC = b"S2RC\x02"  # the format's version is the last byte: entries of another version are stale
SUFFIX = ".entry"
ALIGN = 64  # each tensor's bytes start at a multiple of this, so they are read in place
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int16,
    torch.uint8, torch.int8, torch.bool)}


class CacheError(OSError):
    """The cache folder cannot be used; the message says which and what to do."""

    def __str__(self) -> str:  # (the message alone, without OSError's "[Errno 28] " before it)
        return self.strerror or super().__str__()


# An entry on disk: MAGIC | crc32 of the rest (4 bytes) | header length (8 bytes) | header |
# each tensor's raw bytes, aligned. The header (JSON) names each tensor's dtype, shape and
# offset. Raw bytes, not torch.save: writing and reading cost a memory copy, no more (the
# feature cache writes one entry per frame, which at GPU speed must not be the bottleneck),
# and reading runs no pickle. CRC32 catches a damaged or truncated file (this is a cache,
# not a defence against tampering).

_copy_streams: dict[torch.device, torch.cuda.Stream] = {}


def start_host_copy(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.cuda.Event | None]:
    """Host copies of an entry's tensors, and the event to wait for before reading them
    (None: nothing is on a CUDA GPU). A GPU tensor is copied into pinned memory on a
    stream of its own, behind the work queued so far: the caller does not wait for the
    GPU, and the GPU's queue does not wait for the copy (a plain .cpu() does both)."""
    on_gpu = [t for t in tensors.values() if t.is_cuda]
    if not on_gpu:
        return tensors, None
    device = on_gpu[0].device
    stream = _copy_streams.get(device) or _copy_streams.setdefault(device, torch.cuda.Stream(device))
    stream.wait_stream(torch.cuda.current_stream(device))
    host = {}
    with torch.cuda.stream(stream):
        for name, t in tensors.items():
            if t.is_cuda:
                t.record_stream(stream)  # (its memory is not reused before the copy is done)
                pinned = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                t = pinned.copy_(t, non_blocking=True)
            host[name] = t
        done = torch.cuda.Event()
        done.record(stream)
    return host, done


def encode_entry(tensors: dict[str, torch.Tensor]) -> list:
    """The buffers that make up an entry, in order."""
    arrays, header, offset = [], [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy()
        offset = -(-offset // ALIGN) * ALIGN
        header.append({"name": name, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                       "offset": offset, "nbytes": raw.nbytes})
        arrays.append((offset, raw))
        offset += raw.nbytes
    head = json.dumps(header).encode()
    parts = [struct.pack("<Q", len(head)), head]
    at = 0
    for start, raw in arrays:
        parts.append(bytes(start - at))
        parts.append(memoryview(raw))
        at = start + raw.nbytes
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return [MAGIC, struct.pack("<I", crc), *parts]


def decode_entry(data: bytes | bytearray) -> dict[str, torch.Tensor] | None:
    """The tensors of an entry (sharing `data`'s memory), or None if the bytes are not a
    whole, intact entry of this format."""
    fixed = len(MAGIC) + 4 + 8
    if len(data) < fixed or not data.startswith(MAGIC):
        return None
    view = memoryview(data)
    (crc,) = struct.unpack_from("<I", data, len(MAGIC))
    if zlib.crc32(view[len(MAGIC) + 4:]) != crc:
        return None
    (head_len,) = struct.unpack_from("<Q", data, len(MAGIC) + 4)
    try:
        header = json.loads(bytes(view[fixed: fixed + head_len]))
        base = fixed + head_len
        if isinstance(data, bytes):  # torch.frombuffer wants a writable buffer
            data = bytearray(data)
        out = {}
        for h in header:
            dtype = DTYPES[h["dtype"]]
            raw = torch.frombuffer(data, dtype=torch.uint8, count=h["nbytes"], offset=base + h["offset"]) \
                if h["nbytes"] else torch.empty(0, dtype=torch.uint8)
            out[h["name"]] = raw.view(dtype).reshape(h["shape"])
        return out
    except (ValueError, KeyError, TypeError, RuntimeError):
        return None


def nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


@dataclass
class _Pending:
    """An entry handed to the writer: its tensors as put (what reads get meanwhile) and
    their host copies on the way."""

    tensors: dict[str, torch.Tensor]
    host: dict[str, torch.Tensor]
    copied: torch.cuda.Event | None


class Writer:
    """The thread that writes a write-behind store's entries, in the order they were put."""

    def __init__(self, name: str, depth: int = 4):
        self.name = name
        self._queue: queue.Queue = queue.Queue(maxsize=depth)  # put() blocks when this far behind
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, store: TensorStore, key: str) -> None:
        # queued under the lock: a close() meanwhile must not end the thread ahead of it
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put((store, key))

    def join(self) -> None:
        """Wait until everything handed over so far is written (or has failed)."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued, then end the thread (a later submit starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()

    def end_soon(self) -> None:
        """End the thread without waiting for it (its store is gone, so nothing is queued)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put_nowait(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                item[0]._write_pending(item[1])
            finally:
                item = None  # (holding the store while idle would keep it and its RAM window alive)
                self._queue.task_done()


class TensorStore:
    def __init__(self, folder: str | Path, ram_budget: int = 512 << 20, disk_budget: int | None = None,
                 durable: bool = True, write_behind: bool = False):
        """durable: flush each entry to the disk before it counts as written (a power cut
        cannot lose it). Working data that a crash makes worthless anyway can skip that.
        write_behind: `put` hands the entry to a writer thread and returns (reads see it at
        once), so that disk writes overlap the caller's work; a write error is raised by the
        next `put` or `flush`. For caches only: what was not yet written when the process
        ends is computed again by the next one."""
        self.folder = Path(folder)
        self.durable = durable
        self.write_behind = write_behind
        self._writer = Writer(f"sam2roto-cache-writer:{self.folder.name}") if write_behind else None
        if write_behind:
            _WRITE_BEHIND.add(self)  # flushed at exit
            weakref.finalize(self, self._writer.end_soon)  # a store dropped unclosed ends its thread
        self._pending: dict[str, _Pending] = {}  # handed to the writer, not yet on disk
        self._write_error: CacheError | None = None
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
        # what is on disk: key -> bytes, least recently used first
        self._disk: OrderedDict[str, int] = OrderedDict()
        for key, st in sorted(_entries_on_disk(self.folder), key=lambda e: e[1].st_atime_ns):
            self._disk[key] = st.st_size
        self._disk_bytes = sum(self._disk.values())
        _remove_stale_temporaries(self.folder)

    # -- keys ----------------------------------------------------------------------------

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def __contains__(self, key: str) -> bool:
        return key in self._pending or key in self._ram or key in self._disk

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

    def mean_entry_bytes(self) -> int:
        """What an entry on disk takes on average, header included (0 while there is none)."""
        with self._lock:
            return self._disk_bytes // len(self._disk) if self._disk else 0

    def room_left(self) -> int | None:
        """Bytes that can still be written before older entries are evicted (None: no
        budget); entries still on their way to the disk count as written."""
        if self.disk_budget is None:
            return None
        with self._lock:
            queued = sum(nbytes(p.tensors) for key, p in self._pending.items() if key not in self._disk)
            return self.disk_budget - self._disk_bytes - queued

    # -- read / write --------------------------------------------------------------------

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None:
                return pending.tensors
            hit = self._ram.get(key)
            if hit is not None:
                self._ram.move_to_end(key)
                if key in self._disk:
                    self._disk.move_to_end(key)
                return hit[0]
            if key not in self._disk and not self._found_on_disk(key):
                return None
            path = self.path(key)
            try:
                data = _read_whole(path)
            except FileNotFoundError:
                self._forget_disk(key)
                return None
            tensors = decode_entry(data)
            if tensors is None:
                if data[:len(MAGIC) - 1] == MAGIC[:-1] and not data.startswith(MAGIC):  # another version
                    log.info("Cache entry %s is from another version; it will be computed again.", path)
                else:
                    log.warning("Cache entry %s was damaged; it is removed and will be computed again.", path)
                try:
                    self.delete(key)
                except OSError:  # (a read-only cache: it stays on disk and is skipped again next time)
                    pass
                return None
            self._disk.move_to_end(key)
            self._remember(key, tensors)
            return tensors

    def put(self, key: str, tensors: dict[str, torch.Tensor], *, ram: bool = True, durable: bool | None = None) -> None:
        """durable: this entry flushed to the disk or not (default: the store's setting; a store
        that writes behind always follows its setting)."""
        if self._write_error is not None:  # the disk is full or gone: no use queuing more
            raise self._write_error
        if self.write_behind:
            kept = {k: v.detach() for k, v in tensors.items()}
            pending = _Pending(kept, *start_host_copy(kept))
            with self._lock:
                self._pending[key] = pending
            self._writer.submit(self, key)  # blocks while the writer is a few entries behind
            return
        self._write(key, tensors, ram, durable=durable)

    def flush(self) -> None:
        """Wait until every entry handed to the writer is on disk; raise its error if one
        failed (once: a later put tries the disk again)."""
        if self._writer is not None:
            self._writer.join()
        error, self._write_error = self._write_error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Flush, and end the writer thread (a later put starts it again)."""
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self._writer.close()

    def _write(self, key: str, tensors: dict[str, torch.Tensor], ram: bool, host_copy: tuple | None = None,
               durable: bool | None = None) -> None:
        """Write an entry (`host_copy`: its host copies and their event, if already started)."""
        kept = {k: v.detach().contiguous() for k, v in tensors.items()}  # memory keeps them where they are
        host, copied = host_copy or start_host_copy(kept)
        if copied is not None:
            copied.synchronize()
        parts = encode_entry(host)
        size = sum(memoryview(p).nbytes for p in parts)
        with self._lock:
            self._make_room(size, keep=key)
        # (outside the lock: reads go on meanwhile)
        self._write_atomically(self.path(key), parts, self.durable if durable is None else durable)
        with self._lock:
            self._forget_disk(key)
            self._disk[key] = size
            self._disk_bytes += size
            if ram:
                self._remember(key, kept)
            else:
                self._forget_ram(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._pending.pop(key, None)
            self._forget_ram(key)
            self._forget_disk(key)
            self.path(key).unlink(missing_ok=True)

    def clear(self) -> None:
        """Delete every entry (pinned ones too, and those other processes wrote)."""
        if self._writer is not None:
            self._writer.join()
        with self._lock:
            self._write_error = None  # (what failed to be written is gone anyway)
            for key in {*self._disk, *(k for k, _ in _entries_on_disk(self.folder))}:
                self.delete(key)
            for stray in self.folder.glob(".tmp-*"):
                stray.unlink(missing_ok=True)
            self._ram.clear()
            self._ram_bytes = 0

    # -- internals -----------------------------------------------------------------------

    def _write_pending(self, key: str) -> None:
        """The writer's part: write the entry put under `key`, unless it was replaced or
        deleted meanwhile."""
        pending = None
        try:
            with self._lock:
                pending = self._pending.get(key)
            if pending is not None:
                self._write(key, pending.tensors, ram=True, host_copy=(pending.host, pending.copied))
        except CacheError as e:
            self._write_error = e
            self._drop_older(key)
        except Exception as e:  # never let the writer die silently
            self._write_error = CacheError(errno.EIO, f"Cannot write to the cache folder {self.folder}: {e}")
            self._drop_older(key)
        finally:
            with self._lock:
                if pending is not None and self._pending.get(key) is pending:
                    del self._pending[key]
                elif pending is not None and key not in self._pending:  # deleted while being written
                    self.delete(key)

    def _drop_older(self, key: str) -> None:
        """After a failed write: an older entry under `key` must not be read in its place."""
        with self._lock:
            self._forget_ram(key)
            self._forget_disk(key)
            try:
                self.path(key).unlink(missing_ok=True)
            except OSError:
                pass

    def _found_on_disk(self, key: str) -> bool:
        """Whether another process wrote `key` since this store looked (it is then counted)."""
        try:
            size = self.path(key).stat().st_size
        except OSError:
            return False
        self._disk[key] = size
        self._disk_bytes += size
        return True

    def _write_atomically(self, path: Path, parts: list, durable: bool) -> None:
        tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}")
        try:
            try:
                f = open(tmp, "wb")
            except FileNotFoundError:  # (the folder went: another tracker on the shot made room for its own)
                self.folder.mkdir(parents=True, exist_ok=True)
                f = open(tmp, "wb")
            with f:
                for part in parts:
                    f.write(part)
                if durable:
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
                                      "Free some space, then try again; what was already cached is intact.") from None

    def _make_room(self, incoming: int, keep: str) -> None:
        if self.disk_budget is None:
            return
        replaced = self._disk.get(keep, 0)  # (an entry written again frees its old room)
        for key in list(self._disk):
            if self._disk_bytes - replaced + incoming <= self.disk_budget:
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


def flush_all(stores) -> None:
    """Flush every store (anything with `flush()`), even after one of them failed: the
    first error is raised, the others are logged (a full disk fails them all at once)."""
    errors = []
    for store in stores:
        try:
            store.flush()
        except CacheError as e:
            errors.append(e)
    for e in errors[1:]:
        log.warning("%s", e)
    if errors:
        raise errors[0]


# Stores with a writer thread. At exit each is flushed: what was computed is kept, and no
# writer is left inside a copy or a write while the interpreter shuts down (which aborts it).
_WRITE_BEHIND: weakref.WeakSet[TensorStore] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    try:
        flush_all(list(_WRITE_BEHIND))
    except CacheError as e:  # (the others were logged by flush_all)
        log.warning("%s", e)


def _entries_on_disk(folder: Path):
    """(key, stat) of each entry file in `folder`; files removed meanwhile (by another
    process's eviction) are skipped."""
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            yield path.name[: -len(SUFFIX)], path.stat()
        except FileNotFoundError:
            continue


STALE_TEMPORARY_S = 3600  # a write takes seconds: a temporary this old was left by a killed process


def _remove_stale_temporaries(folder: Path) -> None:
    now = time.time()
    for tmp in folder.glob(".tmp-*"):
        try:
            if now - tmp.stat().st_mtime > STALE_TEMPORARY_S:
                tmp.unlink()
        except OSError:
            continue


def _read_whole(path: Path) -> bytearray:
    """A file's bytes in a writable buffer, read once (tensors are then made over it in place)."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        data = bytearray(size)
        view, got = memoryview(data), 0
        while got < size:
            n = f.readinto(view[got:])
            if not n:
                return data[:got]
            got += n
        return data
