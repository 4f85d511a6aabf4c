"""The FrameSource protocol every footage reader implements, and the two simplest
sources: frames held in memory, and a folder of numbered JPEG/PNG frames.

Frames are addressed by index (0 = the source's first frame); `frame_numbers` maps an
index to the number the user sees (a sequence's own numbers, such as 1001...).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .colour import to_uint8
from .errors import gap_error

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@runtime_checkable
class FrameSource(Protocol):
    frame_numbers: list[int]
    size: tuple[int, int]  # (width, height) of the plate

    def __len__(self) -> int: ...

    def read(self, index: int) -> np.ndarray:
        """The frame at `index`: H x W x 3 uint8 sRGB, the model's input."""
        ...

    @property
    def identity(self) -> str:
        """A key that changes whenever the footage does (caches are keyed by it)."""
        ...


def check_index(source, index: int) -> int:
    if not isinstance(index, (int, np.integer)) or not 0 <= index < len(source):
        raise IndexError(f"frame index {index} is outside the source (0..{len(source) - 1}, "
                         f"{len(source)} frames)")
    return int(index)


class ArraySource:
    """Frames already in memory: an (N, H, W, 3) uint8 array or a list of H x W x 3 arrays."""

    pixel_aspect = 1.0

    def __init__(self, frames, frame_numbers: list[int] | None = None):
        frames = [np.asarray(f) for f in frames]
        if not frames:
            raise ValueError("ArraySource needs at least one frame")
        first = frames[0]
        for i, f in enumerate(frames):
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise ValueError(f"frame {i}: expected H x W x 3 uint8 RGB, got {f.shape} {f.dtype}")
            if f.shape != first.shape:
                raise ValueError(f"frame {i} is {f.shape[1]}x{f.shape[0]}, frame 0 is "
                                 f"{first.shape[1]}x{first.shape[0]}: all frames must have one size")
        self._frames = frames
        self.frame_numbers = list(frame_numbers) if frame_numbers is not None else list(range(len(frames)))
        if len(self.frame_numbers) != len(frames):
            raise ValueError(f"{len(self.frame_numbers)} frame numbers for {len(frames)} frames")
        self.size = (first.shape[1], first.shape[0])
        # the shape too: the same bytes as frames of another size are other footage
        h = hashlib.blake2b(f"{len(frames)}x{first.shape}".encode(), digest_size=16)
        for f in frames:
            h.update(np.ascontiguousarray(f).data)
        self._identity = f"array:{h.hexdigest()}"

    def __len__(self) -> int:
        return len(self._frames)

    def read(self, index: int) -> np.ndarray:
        return self._frames[check_index(self, index)]

    @property
    def identity(self) -> str:
        return self._identity


class FolderSource:
    """A folder of JPEG/PNG frames, ordered by the last number in each file name."""

    pixel_aspect = 1.0

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"Frame folder not found: {self.folder}")
        files = [p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        numbered = []
        for p in files:
            digits = re.findall(r"\d+", p.stem)
            if not digits:
                raise ValueError(f"{p}: frame file names must contain the frame number (e.g. 00042.jpg)")
            numbered.append((int(digits[-1]), p))
        if not numbered:
            raise ValueError(f"No JPEG or PNG frames in {self.folder}")
        numbered.sort()
        numbers = [n for n, _ in numbered]
        if len(set(numbers)) != len(numbers):
            dup = next(n for n in numbers if numbers.count(n) > 1)
            raise ValueError(f"{self.folder}: several files carry frame number {dup}")
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        if missing:  # (tracked across, a gap would make two frames apart neighbours)
            raise gap_error(self.folder, missing, numbers[0], numbers[-1], "Render or copy the missing frames.")
        self.frame_numbers = numbers
        self._paths = [p for _, p in numbered]
        first = self._decode(0)
        self.size = (first.shape[1], first.shape[0])
        h = hashlib.blake2b(digest_size=16)
        for p in self._paths:
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        self._identity = f"folder:{self.folder.resolve()}:{h.hexdigest()}"

    def __len__(self) -> int:
        return len(self._paths)

    def file(self, index: int) -> Path:
        """The file of frame `index`."""
        return self._paths[check_index(self, index)]

    def _decode(self, index: int) -> np.ndarray:
        import cv2

        from .cv_files import read_image

        path = self._paths[index]
        try:
            bgr = read_image(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)  # (16-bit PNGs as they are)
        except OSError as e:
            raise ValueError(f"Cannot read frame {self.frame_numbers[index]} ({path}): {e.strerror}") from None
        if bgr is None:
            raise ValueError(f"Cannot read frame {self.frame_numbers[index]} ({path}): "
                             "the file is damaged or not an image")
        return to_uint8(bgr[:, :, ::-1])  # (16 bits rounded, as an image sequence's are)

    def read(self, index: int) -> np.ndarray:
        rgb = self._decode(check_index(self, index))
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            raise ValueError(f"Frame {self.frame_numbers[index]} ({self._paths[index]}) is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}, the first frame is {self.size[0]}x{self.size[1]}")
        return rgb

    @property
    def identity(self) -> str:
        return self._identity


def as_source(source) -> FrameSource:
    """A FrameSource from what the user gave: a source, a folder of JPEG/PNG frames, a video file, an
    image sequence (see sam2_core.media.open_source, which opens it with the file type's colour
    defaults), or an array."""
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        from .images import IMAGE_SUFFIXES as PLATE_SUFFIXES
        from .open import open_source

        suffixes = {p.suffix.lower() for p in path.iterdir()} if path.is_dir() else set()
        if suffixes & set(IMAGE_SUFFIXES) and not suffixes & (set(PLATE_SUFFIXES) - set(IMAGE_SUFFIXES)):
            return FolderSource(path)  # (plates of other types beside a JPEG: open_source tells them apart)
        # a video, an image sequence (a pattern or one of its files), or a folder of EXR/DPX/TIFF frames
        return open_source(path)
    if isinstance(source, (np.ndarray, list, tuple)):
        return ArraySource(source)
    raise TypeError(f"Cannot read frames from a {type(source).__name__}")
