"""Image sequences: `plate.%04d.exr`, `plate.####.exr` or one file of it (`plate.1001.exr`).

Frame numbers are the files' own (a 1001 start stays 1001). A gap is an error naming the missing
frames, or, with ``missing_frames="hold"``, the frame before the gap is shown again.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .colour import ColourPipeline, colour_pipeline
from .errors import FootageError, gap_error
from .frame_source import check_index
from .images import IMAGE_SUFFIXES, read_header, read_pixels

_PRINTF = re.compile(r"%(0?)(\d*)d")
_HASHES = re.compile(r"#+|@+")
# a file's last number; a minus right after a . or _ is its sign (frame -3 written %04d is
# "plate.-003.exr"), a minus after anything else a separator ("plate-1001.exr")
_LAST_NUMBER = re.compile(r"^(.*?)((?<=[._])-\d+|\d+)(\D*)$")


@dataclass(frozen=True)
class SequencePattern:
    """Files `directory/prefix<number>suffix`, numbers zero-padded to `padding` digits (1: unpadded)."""

    directory: Path
    prefix: str
    suffix: str
    padding: int

    def name(self, number: int) -> str:
        return f"{self.prefix}{number:0{self.padding}d}{self.suffix}"

    def path(self, number: int) -> Path:
        return self.directory / self.name(number)

    def __str__(self) -> str:
        field = f"%0{self.padding}d" if self.padding > 1 else "%d"
        return str(self.directory / f"{self.prefix}{field}{self.suffix}")

    def matches(self, digits: str) -> bool:
        """Whether a file's digits are this pattern's way of writing their number."""
        return len(digits) >= self.padding and (len(digits) == self.padding or not digits.startswith("0"))

    def scan(self) -> dict[int, Path]:
        """The frames on disk: number -> path."""
        if not self.directory.is_dir():
            raise FootageError(f"No such folder: {self.directory} (looking for {self})")
        number = r"(-?\d+)" if self.prefix.endswith((".", "_")) else r"(\d+)"
        rx = re.compile(re.escape(self.prefix) + number + re.escape(self.suffix) + "$")
        frames: dict[int, Path] = {}
        with os.scandir(self.directory) as entries:
            for entry in entries:
                m = rx.match(entry.name)
                if m and self.matches(m.group(1)) and entry.is_file():
                    frames[int(m.group(1))] = Path(entry.path)
        return frames


def is_pattern(text: str) -> bool:
    """Whether a path names a sequence by a pattern (%04d, ####, @@@@) rather than a file."""
    name = Path(text).name
    return bool(_PRINTF.search(name) or _HASHES.search(name))


def parse_pattern(path: str | Path) -> SequencePattern | None:
    """The sequence a path names: a pattern, or a numbered file (its last number is the frame
    number; a file's # or % is part of its name)."""
    path = Path(path)
    name = path.name
    m = None if path.is_file() else _PRINTF.search(name)
    if m:
        if _PRINTF.search(name, m.end()):
            raise FootageError(f"{path}: a sequence pattern holds one frame-number field, this one has several")
        padding = int(m.group(2)) if m.group(2) else 1
        return SequencePattern(path.parent, name[:m.start()], name[m.end():], max(padding, 1))
    m = None if path.is_file() else _HASHES.search(name)
    if m:
        if _HASHES.search(name, m.end()):
            raise FootageError(f"{path}: a sequence pattern holds one run of # (or @), this one has several")
        return SequencePattern(path.parent, name[:m.start()], name[m.end():], len(m.group(0)))
    stem, dot, ext = name.rpartition(".")
    m = _LAST_NUMBER.match(stem if dot else name)
    if not m:
        return None
    prefix, digits, rest = m.groups()
    suffix = rest + (dot + ext if dot else "")
    return SequencePattern(path.parent, prefix, suffix, len(digits))


def find_sequence(path: str | Path) -> tuple[SequencePattern | None, dict[int, Path]]:
    """The pattern and frames (number -> path) that `path` (a pattern or one frame of it) belongs to.

    A file with no number in its name is a sequence of one frame, numbered 0.
    """
    path = Path(path)
    pattern = parse_pattern(path)
    if pattern is None:
        if not path.is_file():
            raise FootageError(f"Footage not found: {path}")
        return None, {0: path}
    if path.is_file() or not is_pattern(str(path)):
        # one frame named: 1001 may belong to %04d (0998, 0999, 1000, ...) or to unpadded numbers (998, 999, ...)
        if not path.is_file():
            raise FootageError(f"Footage not found: {path}")
        frames = pattern.scan()
        unpadded = SequencePattern(pattern.directory, pattern.prefix, pattern.suffix, 1)
        more = unpadded.scan() if pattern.padding > 1 else {}
        holds_it = path.name in {p.name for p in more.values()}  # (a.0001.png is not of a.2.png, a.3.png)
        return (unpadded, more) if holds_it and len(more) > len(frames) else (pattern, frames)
    frames = pattern.scan()
    if not frames:
        similar = []
        if pattern.directory.is_dir():
            similar = sorted(p.name for p in pattern.directory.iterdir() if p.name.endswith(pattern.suffix))[:5]
        hint = f" Files there ending in {pattern.suffix!r}: {', '.join(similar)}." if similar else ""
        raise FootageError(f"No frames match {pattern}.{hint} Check the name and the number of digits "
                           "(#### and %04d both mean four).")
    return pattern, frames


def sequences_in(folder: str | Path) -> list[tuple[SequencePattern, dict[int, Path]]]:
    """The image sequences in a folder (EXR, DPX, TIFF, PNG, JPEG), longest first."""
    found: dict[SequencePattern, dict[int, Path]] = {}
    seen: set[tuple[str, str]] = set()
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        pattern = parse_pattern(p)
        if pattern is None or (pattern.prefix, pattern.suffix) in seen:
            continue
        seen.add((pattern.prefix, pattern.suffix))
        pattern, frames = find_sequence(p)
        found[pattern] = frames
    return sorted(found.items(), key=lambda pf: -len(pf[1]))



class SequenceSource:
    """An image sequence as a FrameSource: frames in their own numbers, colour through OCIO.

    `missing_frames`: "error" (a gap raises FootageError naming the missing frames) or "hold"
    (a missing frame shows the frame before it; `held` lists them).
    """

    def __init__(self, path: str | Path, colorspace: str | None = None, *, mode: str | None = None,
                 config: str | os.PathLike | None = None, missing_frames: str = "error",
                 display: str | None = None, view: str | None = None,
                 pattern: SequencePattern | None = None, frames: dict[int, Path] | None = None):
        if missing_frames not in ("error", "hold"):
            raise ValueError(f"missing_frames must be 'error' or 'hold', not {missing_frames!r}")
        if frames is None:
            pattern, frames = find_sequence(path)
        self.pattern = pattern
        self.path = str(pattern) if pattern is not None else str(path)
        numbers = sorted(frames)
        first, last = numbers[0], numbers[-1]
        present = set(numbers)
        missing = [n for n in range(first, last + 1) if n not in present]
        if missing and missing_frames == "error":
            raise gap_error(self.path, missing, first, last, "Render or copy the missing frames, or let the "
                                       "previous frame stand in for them (sam2roto --missing-frames hold; in "
                                       "Python missing_frames='hold').")
        self.frame_numbers = list(range(first, last + 1))
        self.held = missing
        self.missing_frames = missing_frames
        self._files: list[tuple[int, Path]] = []  # per index: the frame number and file actually read
        current = (first, frames[first])
        for n in self.frame_numbers:
            if n in frames:
                current = (n, frames[n])
            self._files.append(current)
        self.header = read_header(frames[first], first)
        self.size = self.header.size
        self.pixel_aspect = self.header.pixel_aspect
        self.layer = self.header.layer
        self.rate = self.header.rate  # where the first frame's header says (EXR, DPX)
        self.start_timecode = self.header.timecode
        self._colour: ColourPipeline = colour_pipeline(self.header.file_colour(), colorspace, mode, config, display,
                                                       view, where=self.path)
        self.colour = self._colour.settings
        h = hashlib.blake2b(digest_size=16)
        for n in numbers:
            st = frames[n].stat()
            h.update(f"{n}:{frames[n].name}:{st.st_size}:{st.st_mtime_ns};".encode())
        # (the path resolved: the same footage reached through a relative path is the same)
        self._identity = f"sequence:{Path(self.path).resolve()}:{missing_frames}:{h.hexdigest()}:{self.colour.key()}"

    def __len__(self) -> int:
        return len(self.frame_numbers)

    def file(self, index: int) -> Path:
        """The file read for frame `index` (for a held frame: the frame before the gap)."""
        return self._files[check_index(self, index)][1]

    def read_raw(self, index: int) -> np.ndarray:
        """Frame `index` as stored (display window, upright): uint8, uint16 or float32 RGB."""
        number, path = self._files[check_index(self, index)]
        return read_pixels(path, self.header, number)

    def read(self, index: int) -> np.ndarray:
        return self._colour(self.read_raw(index))

    @property
    def identity(self) -> str:
        return self._identity

    def __repr__(self) -> str:
        return (f"SequenceSource({self.path!r}, frames {self.frame_numbers[0]}-{self.frame_numbers[-1]}, "
                f"{self.size[0]}x{self.size[1]}, colour {self.colour.key()!r})")
