"""Find, download and verify the official SAM 2 checkpoint files.

The SHA-256 sums below are the Git LFS object ids of the same files on the model hub
(Meta's uploads under facebook/sam2-* and facebook/sam2.1-*), since the SAM 2 project
publishes no checksums of its own.

Standard library only: this runs inside host applications (Blender, compositors) whose
Python environments we do not control.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..file_lock import try_lock, unlock

# Network reads that stall longer than this fail (and can be resumed) instead of hanging forever.
TIMEOUT_S = 30
_HASH_CHUNK = 1 << 20
_READ_CHUNK = 256 << 10
_MIB = float(1 << 20)
# At most ~5 progress updates a second: redrawing on every chunk floods slow terminals.
_PROGRESS_INTERVAL_S = 0.2

_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
_SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"


@dataclass(frozen=True)
class OfficialWeights:
    name: str
    filename: str
    url: str
    size: int
    sha256: str


# name, bytes, sha256
_PINNED = (
    ("sam2_hiera_tiny", 155906050, "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125"),
    ("sam2_hiera_small", 184309650, "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3"),
    ("sam2_hiera_base_plus", 323493298, "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071"),
    ("sam2_hiera_large", 897952466, "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b"),
    ("sam2.1_hiera_tiny", 156008466, "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69"),
    ("sam2.1_hiera_small", 184416285, "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38"),
    ("sam2.1_hiera_base_plus", 323606802, "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5"),
    ("sam2.1_hiera_large", 898083611, "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318"),
)


def _entry(name: str, size: int, sha256: str) -> OfficialWeights:
    base = _SAM21_URL if name.startswith("sam2.1_") else _SAM2_URL
    filename = name + ".pt"
    return OfficialWeights(name, filename, base + filename, size, sha256)


OFFICIAL_WEIGHTS: dict[str, OfficialWeights] = {row[0]: _entry(*row) for row in _PINNED}


class WeightsError(RuntimeError):
    """A checkpoint could not be found, downloaded or verified; the message says what to do."""


def weights_dir() -> Path:
    """Where checkpoints live: $SAM2ROTO_WEIGHTS_DIR, else the XDG cache, else ~/.cache."""
    explicit = os.environ.get("SAM2ROTO_WEIGHTS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    cache = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return cache / "sam2roto" / "weights"


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, streamed so a 900 MB checkpoint never sits in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Download


# Failures worth keeping the partial file for: the next run resumes where this one stopped.
# (HTTPError is a URLError; socket.timeout is TimeoutError; resets are ConnectionError.)
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


# on_progress(file name, bytes so far, bytes in all or None): called as a download starts (before
# any network) and as its data arrives. It may raise to stop the download: what arrived is
# kept, and resumed.
OnProgress = Callable[[str, int, "int | None"], None]


def download(
    url: str, dest: str | os.PathLike, *, sha256: str, size: int | None = None, progress: bool = True,
    on_progress: OnProgress | None = None,
) -> Path:
    """Download `url` to `dest`, resuming a previous partial download, and verify it.
    progress: draw a progress bar on stderr.

    `dest` only ever appears complete and verified: data goes to `<dest>.part` and is moved
    into place atomically after the size and SHA-256 checks pass.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    if on_progress is not None:  # (before any network: the caller may stop it here)
        on_progress(dest.name, part.stat().st_size if part.exists() else 0, size)
    try:
        _fetch_into(url, part, size, dest.name, progress, on_progress)
    except _NETWORK_ERRORS as exc:
        message = (
            f"Could not download {url} ({_reason(exc)}).\n"
            f"To install by hand, download that URL and place the file at {dest.resolve()}."
        )
        if part.exists() and part.stat().st_size:
            message += f"\nPartial data kept at {part.resolve()} and resumed next time."
        raise WeightsError(message) from exc
    _verify_part(url, part, sha256, size)
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, size: int | None, name: str, draw: bool,
                on_progress: OnProgress | None) -> None:
    """Append the rest of `url` to `part` (or rewrite it when the server cannot resume)."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset >= size:
        return  # nothing left to fetch; verification decides whether the part is good
    request = urllib.request.Request(url, headers={"User-Agent": "sam2roto"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            exc.close()
            return  # server has nothing past our part: it is complete, or wrong; verify tells
        raise
    with response:
        if offset and getattr(response, "status", None) != 206:
            offset = 0  # server (or file://) ignored the Range: start over from scratch
        length = response.headers.get("Content-Length", "")
        expected = offset + int(length) if length.isdigit() else None
        bar = _Progress(name, size or expected, offset, draw, on_progress)
        with open(part, "ab" if offset else "wb") as out:
            received = _copy(response, out, bar)
    # http.client returns EOF quietly when the server hangs up early; treat it as the
    # network failure it is so the partial data is kept for resuming.
    if expected is not None and offset + received < expected:
        raise ConnectionError(f"connection closed after {offset + received} of {expected} bytes")


def _copy(response, out, bar: _Progress) -> int:
    received = 0
    try:
        while chunk := response.read(_READ_CHUNK):
            out.write(chunk)
            received += len(chunk)
            bar.update(received)
    finally:
        bar.close(received)
    return received


def _verify_part(url: str, part: Path, sha256: str, size: int | None) -> None:
    """Delete `part` and raise unless it has the expected size and SHA-256."""
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink()
        raise WeightsError(
            f"The file downloaded from {url} has {actual_size} bytes, expected {size} bytes "
            f"(SHA-256 {sha256}).\nThe download was deleted and nothing was loaded. Run again to "
            "retry; if this keeps happening, the server or mirror is serving a different file."
        )
    actual = sha256_of(part)
    if actual != sha256.lower():
        part.unlink()
        raise WeightsError(
            f"The file downloaded from {url} failed its checksum: expected SHA-256 {sha256}, "
            f"got {actual}.\nThe download was deleted and nothing was loaded. Run again to retry; "
            "if this keeps happening, the server or mirror is serving a different file."
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


class _Progress:
    """A download's progress: a one-line bar on stderr (`draw`), redrawn in place with \\r,
    and the caller's `on_progress`, told of every chunk."""

    def __init__(self, label: str, total: int | None, start: int, draw: bool = True,
                 on_progress: OnProgress | None = None):
        self.label, self.total, self.start = label, total, start
        self.draw, self.on_progress = draw, on_progress
        self.t0 = time.monotonic()
        self.last_draw = 0.0

    def update(self, received: int) -> None:
        if self.on_progress is not None:
            self.on_progress(self.label, self.start + received, self.total)
        now = time.monotonic()
        if self.draw and now - self.last_draw >= _PROGRESS_INTERVAL_S:
            self.last_draw = now
            self._draw(received, now)

    def close(self, received: int) -> None:
        if self.draw:
            self._draw(received, time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()

    def _draw(self, received: int, now: float) -> None:
        done = self.start + received
        # Speed counts only this session's bytes: resumed data arrived long ago.
        speed = received / max(now - self.t0, 1e-6)
        parts = [self.label]
        if self.total:
            parts.append(f"{100 * done / self.total:3.0f}%")
            parts.append(f"{done / _MIB:.1f}/{self.total / _MIB:.1f} MiB")
        else:
            parts.append(f"{done / _MIB:.1f} MiB")
        parts.append(f"{speed / _MIB:.1f} MiB/s")
        if self.total and speed > 0:
            parts.append(f"{_clock(max(self.total - done, 0) / speed)} left")
        sys.stderr.write("\r  " + "  ".join(parts) + "   ")
        sys.stderr.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# ---------------------------------------------------------------------------------------------
# Official checkpoints


def official_checkpoint(name: str, *, download_missing: bool = True, progress: bool = True,
                        on_progress: OnProgress | None = None, rehash: bool = False) -> Path:
    """Path to a verified official checkpoint, downloading it into weights_dir() if missing
    (progress: a bar on stderr; on_progress: see OnProgress; rehash: check the SHA-256 of a
    file verified before again, not only its size and time)."""
    weights = _lookup(name)
    path = weights_dir() / weights.filename
    if path.exists():
        _verify_present(path, weights, rehash)
        return path
    url = _download_url(weights)
    if not download_missing:
        raise WeightsError(
            f"The SAM 2 checkpoint {weights.filename} is not installed.\n"
            f"Download {url} and place the file at {path.resolve()} "
            "(or allow downloads and run again)."
        )
    with _one_download_at_a_time(path, weights.size, on_progress):
        if path.exists():  # (another process downloaded it meanwhile)
            _verify_present(path, weights)
            return path
        download(url, path, sha256=weights.sha256, size=weights.size, progress=progress, on_progress=on_progress)
        _write_sidecar(path, weights.sha256)
    return path


@contextlib.contextmanager
def _one_download_at_a_time(dest: Path, size: int, on_progress: OnProgress | None):
    """Held while this process downloads `dest`: a second process (the service beside a
    command line, or another workstation on a shared weights folder) waits for it, telling
    how far the first has got, instead of writing into the same partial file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest.with_name(dest.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        said = False
        while not try_lock(fd):
            if not said:
                print(f"Waiting for another process downloading {dest.name}...", file=sys.stderr, flush=True)
                said = True
            if on_progress is not None:  # (it may raise to stop waiting)
                part = _part_path(dest)
                on_progress(dest.name, part.stat().st_size if part.exists() else 0, size)
            time.sleep(0.5)
        try:
            yield
        finally:
            unlock(fd)
    finally:
        os.close(fd)


def _lookup(name: str) -> OfficialWeights:
    try:
        return OFFICIAL_WEIGHTS[name]
    except KeyError:
        pass
    valid = list(OFFICIAL_WEIGHTS)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise WeightsError(f"Unknown SAM 2 model {name!r}.{hint} Valid names: {', '.join(valid)}.")


def _download_url(weights: OfficialWeights) -> str:
    # Studio mirrors hold the files flat, without Meta's dated subfolders; a mirror may be a
    # folder (a network share) as well as a URL.
    base = os.environ.get("SAM2ROTO_WEIGHTS_BASE_URL")
    if not base:
        return weights.url
    if "://" not in base:
        base = Path(base).expanduser().resolve().as_uri()
    return f"{base.rstrip('/')}/{weights.filename}"


def _verify_present(path: Path, weights: OfficialWeights, rehash: bool = False) -> None:
    """Raise (after moving the file aside) unless `path` is the official file."""
    if not rehash and _sidecar_matches(path, weights.sha256):
        return  # verified earlier and untouched since: skip re-hashing 900 MB on every start
    actual_size = path.stat().st_size
    if actual_size != weights.size:
        detail = f"has {actual_size} bytes, the official file has {weights.size} bytes"
    else:
        actual = sha256_of(path)
        if actual == weights.sha256.lower():
            _write_sidecar(path, weights.sha256)
            return
        detail = f"does not match the official SHA-256 (expected {weights.sha256}, got {actual})"
    # Never load a bad checkpoint, but never destroy a user's file silently either.
    bad = path.with_name(path.name + ".bad")
    _sidecar_path(path).unlink(missing_ok=True)
    os.replace(path, bad)
    raise WeightsError(
        f"The checkpoint at {path.resolve()} {detail}; it was not loaded.\n"
        f"It was moved aside to {bad.resolve()}.\n"
        f"Delete it and run again to download the official file, or place the official file "
        f"({_download_url(weights)}) at {path.resolve()}."
    )


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _write_sidecar(path: Path, sha256: str) -> None:
    st = path.stat()
    record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        _sidecar_path(path).write_text(json.dumps(record) + "\n")
    except OSError:
        pass  # a read-only weights folder only costs a re-hash next time


def _sidecar_matches(path: Path, sha256: str) -> bool:
    """True when the sidecar vouches for exactly this file: same sum, size and mtime."""
    try:
        record = json.loads(_sidecar_path(path).read_text())
        st = path.stat()
        return record == {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except (OSError, ValueError):
        return False
