"""Orientation: turning stored pixels upright, as a player shows them.

Videos carry a display matrix (or a 'rotate' tag); photos carry an EXIF orientation. Both come down
to an `Orientation`: an optional transpose followed by optional horizontal and vertical flips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Orientation:
    transpose: bool = False  # swap x and y first
    flip_x: bool = False  # then mirror left-right
    flip_y: bool = False  # then mirror top-bottom

    @property
    def identity(self) -> bool:
        return not (self.transpose or self.flip_x or self.flip_y)

    def apply(self, image: np.ndarray) -> np.ndarray:
        out = image
        if self.transpose:
            out = out.swapaxes(0, 1)
        if self.flip_x:
            out = out[:, ::-1]
        if self.flip_y:
            out = out[::-1]
        return out if out is image else np.ascontiguousarray(out)

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) of a width x height picture once upright."""
        return (height, width) if self.transpose else (width, height)

    def to_list(self) -> list[bool]:
        return [self.transpose, self.flip_x, self.flip_y]


UPRIGHT = Orientation()


def from_display_matrix(matrix) -> Orientation:
    """From FFmpeg's 3x3 display matrix (9 numbers, row-major, the 2x2 part in 16.16 fixed point).

    A source pixel (x, y) is shown at (a*x + c*y, b*x + d*y) plus an offset, with a, b, c, d the
    matrix's elements 0, 1, 3, 4. Only multiples of 90 degrees (with mirroring) are supported; other
    angles keep the picture as stored.
    """
    a, b, c, d = (int(np.sign(round(matrix[i] / 65536.0))) for i in (0, 1, 3, 4))
    if a != 0 and d != 0 and b == 0 and c == 0:  # x' from x, y' from y
        return Orientation(False, a < 0, d < 0)
    if a == 0 and d == 0 and b != 0 and c != 0:  # x' from y, y' from x
        return Orientation(True, c < 0, b < 0)
    return UPRIGHT


def from_rotate_tag(degrees: float) -> Orientation:
    """From a clockwise 'rotate' tag (older MP4/MOV files): 90 means turn the picture clockwise."""
    turns = int(round(degrees / 90.0)) % 4
    return [UPRIGHT, Orientation(True, True, False), Orientation(False, True, True),
            Orientation(True, False, True)][turns]


def from_exif(code: int) -> Orientation:
    """From an EXIF/TIFF orientation code (1-8): where the stored first row and column belong."""
    table = {
        1: UPRIGHT,
        2: Orientation(False, True, False),
        3: Orientation(False, True, True),
        4: Orientation(False, False, True),
        5: Orientation(True, False, False),
        6: Orientation(True, True, False),  # turn 90 degrees clockwise
        7: Orientation(True, True, True),
        8: Orientation(True, False, True),  # turn 90 degrees counter-clockwise
    }
    return table.get(int(code or 1), UPRIGHT)
