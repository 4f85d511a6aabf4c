"""Test footage made on the spot: videos and image files with the frame number burnt into the pixels."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import OpenImageIO as oiio

W, H = 160, 120
CELL, STEP, TOP, LEFT = 12, 16, 8, 8  # the code: a row of 12x12 squares, black (0) or white (1)
BITS = 8


def burn(number: int, width: int = W, height: int = H) -> np.ndarray:
    """An RGB uint8 picture spelling `number` in binary (8 squares, low bit left) over a gradient."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = 40 + (150 * xx // max(width - 1, 1))
    img[..., 1] = 60 + (120 * yy // max(height - 1, 1))
    img[..., 2] = 110
    for b in range(BITS):
        x0 = LEFT + b * STEP
        img[TOP - 2:TOP + CELL + 2, x0 - 2:x0 + CELL + 2] = 128
        img[TOP:TOP + CELL, x0:x0 + CELL] = 255 if (number >> b) & 1 else 0
    return img


def read_code(img: np.ndarray) -> int:
    """The number `burn` spelled, read back from a (possibly lossy) picture."""
    value = 0
    for b in range(BITS):
        x0 = LEFT + b * STEP
        if img[TOP + 3:TOP + CELL - 3, x0 + 3:x0 + CELL - 3].mean() > 128:
            value |= 1 << b
    return value


def encode_video(path: Path, codec: str = "libx264", pix_fmt: str = "yuv420p", n: int = 24, *,
                 size: tuple[int, int] = (W, H), rate=24, options: dict | None = None,
                 container_options: dict | None = None, pts: list[int] | None = None,
                 rotation: tuple[int, bool, bool] | None = None, timecode: str | None = None,
                 sar: Fraction | None = None, frames: list[np.ndarray] | None = None,
                 src_format: str = "rgb24") -> Path:
    """Encodes `n` burnt-in frames (or `frames`) with PyAV. `pts` (milliseconds) makes a variable rate."""
    path = Path(path)
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        if rotation is not None:
            stream.set_display_rotation(rotation[0], hflip=rotation[1], vflip=rotation[2])
        if timecode:
            stream.metadata["timecode"] = timecode
        if pts is not None:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        pictures = frames if frames is not None else [burn(i, *size) for i in range(n)]
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format=src_format)
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame FFmpeg decodes from the file, straight through (the reference for counts)."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def write_image(path: Path, pixels: np.ndarray, fmt: str, *, channels: tuple[str, ...] | None = None,
                origin: tuple[int, int] = (0, 0), display: tuple[int, int] | None = None,
                attrs: dict | None = None) -> Path:
    """Writes `pixels` (H x W x C) with OpenImageIO as `fmt` ("uint8", "uint16", "half", "float").

    origin: the data window's corner; display: the display window's (width, height) at 0, 0;
    attrs: header attributes, a value or (OpenImageIO type, value).
    """
    path = Path(path)
    h, w = pixels.shape[:2]
    c = 1 if pixels.ndim == 2 else pixels.shape[2]
    spec = oiio.ImageSpec(w, h, c, fmt)
    if channels:
        spec.channelnames = channels
    spec.x, spec.y = origin
    if display is not None:
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, *display
    for k, v in (attrs or {}).items():
        if isinstance(v, tuple):  # (OIIO type, value)
            spec.attribute(k, v[0], v[1])
        else:
            spec.attribute(k, v)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None, oiio.geterror()
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(pixels)), out.geterror()
    out.close()
    return path
