"""Footage made on the fly for benchmarks: no frame is held in memory, so what a run's
memory measures is the tracker's own."""

from __future__ import annotations

import numpy as np


class MovingDiscSource:
    """A FrameSource of `n` frames: a shaded disc (and two squares) moving over a gradient."""

    def __init__(self, n: int, width: int = 1920, height: int = 1080):
        self.n = n
        self.size = (width, height)
        self.frame_numbers = list(range(1001, 1001 + n))
        self._yy, self._xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self._base = np.empty((height, width, 3), np.uint8)
        self._base[..., 0] = (40 + 80 * self._yy / height).astype(np.uint8)
        self._base[..., 1] = (60 + 60 * self._xx / width).astype(np.uint8)
        self._base[..., 2] = 90

    def __len__(self) -> int:
        return self.n

    @property
    def identity(self) -> str:
        return f"moving-disc:{self.n}:{self.size}"

    def disc_centre(self, i: int) -> tuple[float, float]:
        w, h = self.size
        return (0.2 * w + 0.6 * w * i / max(1, self.n - 1), 0.5 * h + 0.1 * h * np.sin(i / 7))

    def square_centre(self, k: int, i: int) -> tuple[float, float]:
        w, h = self.size
        return (0.15 * w + 0.35 * w * k, 0.25 * h + 0.4 * h * i / max(1, self.n - 1))

    def read(self, i: int) -> np.ndarray:
        w, h = self.size
        img = self._base.copy()
        for k in range(2):
            cx, cy = self.square_centre(k, i)
            r = 0.06 * h
            img[int(cy - r):int(cy + r), int(cx - r):int(cx + r)] = (30 + 150 * k, 160, 200 - 120 * k)
        # the disc is drawn inside its bounding box only: a 1080p frame costs a few ms, as decoding one would
        cx, cy = self.disc_centre(i)
        r = 0.15 * h
        y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
        x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
        xx, yy = self._xx[y0:y1, x0:x1], self._yy[y0:y1, x0:x1]
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        shade = np.clip(1.2 - np.sqrt((xx - cx + r / 2) ** 2 + (yy - cy + r / 2) ** 2) / (2 * r), 0, 1)
        box = img[y0:y1, x0:x1]
        box[inside] = np.stack([230 * shade + 20, 40 * shade, 30 * shade], -1)[inside].astype(np.uint8)
        return img
