"""Image files read and written with OpenCV, by any path on every platform.

OpenCV's imread/imwrite open files by a narrow-character path, which on Windows cannot name
a file with letters outside the system's code page ("Plates/Über.png", a user folder in
Cyrillic): they fail without saying why. Here Python opens the file, OpenCV only decodes
and encodes the bytes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_image(path: str | Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray | None:
    """The image in the file (as cv2.imread gives it, BGR), or None if it is not an image
    OpenCV can decode. OSError if the file cannot be read."""
    data = np.fromfile(str(path), dtype=np.uint8)
    return cv2.imdecode(data, flags) if data.size else None


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write the image (BGR, as cv2.imwrite takes it) in the format the path's suffix names.
    OSError if the file cannot be written; ValueError for a suffix OpenCV cannot write."""
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix, image)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"Cannot write {path}: OpenCV writes no {path.suffix or 'suffix-less'} image files")
    path.write_bytes(encoded.tobytes())
