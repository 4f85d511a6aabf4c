"""`open_source`: footage as a FrameSource, whatever the user points at."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import FootageError
from .images import IMAGE_SUFFIXES
from .sequence import SequenceSource, find_sequence, is_pattern, sequences_in
from .video import VideoSource

MISSING_FRAMES = ("error", "hold")


def open_source(path_or_pattern: str | os.PathLike, colorspace: str | None = None, *, mode: str | None = None,
                config: str | os.PathLike | None = None, missing_frames: str = "error",
                index_dir: str | os.PathLike | None = None, display: str | None = None, view: str | None = None):
    """Opens footage: a video file, an image sequence (`plate.%04d.exr`, `plate.####.exr`, or one of its
    files, `plate.1001.exr`), a single image, or a folder holding one image sequence.

    colorspace: the footage's OCIO colour space (None: the file type's default, see below).
    mode: "view" (the config's sRGB display rendering), "convert" (a plain conversion to sRGB-encoded
        Rec.709), "passthrough" (the code values unchanged), or None for the default: "view" for
        scene-linear and log colour spaces, "convert" for display-referred ones.
    Defaults by file: video, PNG, JPEG and 8/16-bit TIFF pass through; OpenEXR (and float TIFF) is
        the config's scene_linear role, through "view"; DPX follows its header's transfer
        characteristic, and without one the colour space must be given.
    config: an OCIO config file or ``ocio://`` URI; default $OCIO, else OCIO's built-in studio config.
    display, view: override the display and view "view" uses (default: the config's sRGB display
        and its default view).
    missing_frames: "error" (a gap in a sequence raises, naming the missing frames) or "hold" (the
        previous frame stands in).
    index_dir: where video frame indexes are cached (default $SAM2ROTO_INDEX_DIR, else the user's
        cache folder).

    The source's `colour` records what was chosen (`colour.to_dict()` for the shot manifest).
    """
    if missing_frames not in MISSING_FRAMES:
        raise ValueError(f"missing_frames must be 'error' or 'hold', not {missing_frames!r}")
    path = Path(os.fspath(path_or_pattern)).expanduser()
    colour = dict(colorspace=colorspace, mode=mode, config=config, display=display, view=view)
    if path.is_dir():
        found = sequences_in(path)
        if not found:
            raise FootageError(f"No image sequence in the folder {path} (looked for {', '.join(IMAGE_SUFFIXES)})")
        if len(found) > 1:
            listed = ", ".join(f"{p.name(min(f))} ({len(f)} frames)" for p, f in found[:6])
            raise FootageError(f"The folder {path} holds several image sequences ({listed}): open one of them "
                               "by a file name or a pattern such as plate.####.exr")
        pattern, frames = found[0]
        return SequenceSource(path, pattern=pattern, frames=frames, missing_frames=missing_frames, **colour)
    if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:  # (a video, whatever its name holds)
        return VideoSource(path, index_dir=index_dir, **colour)
    if path.suffix.lower() in IMAGE_SUFFIXES or is_pattern(str(path)):
        pattern, frames = find_sequence(path)
        return SequenceSource(path, pattern=pattern, frames=frames, missing_frames=missing_frames, **colour)
    if not path.exists():
        raise FootageError(f"Footage not found: {path}")
    return VideoSource(path, index_dir=index_dir, **colour)


def open_still(path: str | os.PathLike, colorspace: str | None = None, **colour) -> SequenceSource:
    """One image file as footage of one frame, even where it is a frame of a sequence (its
    number kept; 0 where its neighbours are numbered another way). The colour arguments are
    open_source's."""
    path = Path(os.fspath(path)).expanduser()
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise FootageError(f"{path} is not an image file this reads ({', '.join(IMAGE_SUFFIXES)})")
    if not path.is_file():
        raise FootageError(f"Image not found: {path}")
    pattern, frames = find_sequence(path)
    number = next((n for n, p in frames.items() if Path(p).name == path.name), None)
    if number is None:  # (its neighbours are numbered another way, e.g. padded and not)
        return SequenceSource(path, pattern=None, frames={0: path}, colorspace=colorspace, **colour)
    return SequenceSource(path, pattern=pattern, frames={number: frames[number]}, colorspace=colorspace, **colour)


FINGERPRINT_BYTES = 1 << 20


def first_file(path: str | os.PathLike) -> Path | None:
    """The file holding the first frame of the footage at `path` (a video, a frame or a pattern
    of a sequence, a folder of frames); None where there is none."""
    path = Path(os.fspath(path)).expanduser()
    try:
        if path.is_dir():
            found = sequences_in(path)
            frames = found[0][1] if len(found) == 1 else {}
        elif path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            return path
        else:
            frames = find_sequence(path)[1]
    except (FootageError, OSError):
        return None
    return Path(frames[min(frames)]) if frames else None


def fingerprint(path: str | os.PathLike) -> str:
    """What the footage at `path` is, wherever it lies: a hash of its first frame's file (its
    size and first MiB). "" where there is no footage, or it cannot be read."""
    first = first_file(path)
    return "" if first is None else file_fingerprint(first)


def source_fingerprint(source) -> str:
    """`fingerprint` of an open FrameSource (no folder listed again); "" for frames in memory."""
    if hasattr(source, "file"):  # (a sequence: the file of its first frame)
        return file_fingerprint(source.file(0))
    path = getattr(source, "path", None)
    return file_fingerprint(Path(path)) if path is not None and Path(path).is_file() else ""


def file_fingerprint(file: Path) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    try:
        with open(file, "rb") as f:
            h.update(str(os.fstat(f.fileno()).st_size).encode())
            h.update(f.read(FINGERPRINT_BYTES))
    except OSError:
        return ""
    return h.hexdigest()
