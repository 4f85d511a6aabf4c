"""Test footage made on the spot: videos and image files with the frame number burnt into the pixels."""

from __future__ import annotations

import struct
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
                 src_format: str = "rgb24", matrix=None, tag_matrix: bool = False) -> Path:
    """Encodes `n` burnt-in frames (or `frames`) with PyAV. `pts` (milliseconds) makes a variable rate.
    `matrix` (an av Colorspace) converts RGB to Y'CbCr by that matrix (else FFmpeg's BT.601);
    `tag_matrix` also writes it into the stream (else it is untagged)."""
    path = Path(path)
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        if tag_matrix:
            stream.codec_context.colorspace = matrix
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
            if matrix is not None:
                frame = frame.reformat(format=pix_fmt, dst_colorspace=matrix)
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


REC709_LUMINANCE = np.array([0.2126, 0.7152, 0.0722], np.float32)


def write_luma_chroma_exr(path: Path, rgb: np.ndarray, *, sampling: int = 2, origin: tuple[int, int] = (0, 0),
                          display: tuple[int, int] | None = None, weights=REC709_LUMINANCE,
                          chromaticities: tuple[float, ...] | None = None, rate: tuple[int, int] | None = None,
                          timecode: int | None = None) -> Path:
    """An uncompressed OpenEXR of Y, RY, BY (half), chroma taken at every `sampling`-th pixel, written
    byte by byte (OpenImageIO refuses subsampled channels, and the OpenEXR Python writer cannot
    write them). `origin` (divisible by `sampling`): the data window's corner; `display`: the
    display window's (width, height) at 0, 0; `rate`: framesPerSecond as (numerator, denominator);
    `timecode`: the timeCode's SMPTE 12M time and flags."""
    h, w, _ = rgb.shape
    lum = rgb @ np.asarray(weights, np.float32)
    first = [(-o) % sampling for o in origin]  # (a chroma sample sits where the coordinate divides by sampling)
    ry = ((rgb[..., 0] - lum) / lum)[first[1]::sampling, first[0]::sampling]
    by = ((rgb[..., 2] - lum) / lum)[first[1]::sampling, first[0]::sampling]

    def attribute(name: str, kind: str, value: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    channels = b"".join(name.encode() + b"\0" + struct.pack("<iB3xii", 1, 0, s, s)  # (half, sampling)
                        for name, s in (("BY", sampling), ("RY", sampling), ("Y", 1))) + b"\0"
    x0, y0 = origin
    dw, dh = display or (w, h)
    header = b"\x76\x2f\x31\x01" + struct.pack("<i", 2)
    header += attribute("channels", "chlist", channels) + attribute("compression", "compression", b"\0")
    header += attribute("dataWindow", "box2i", struct.pack("<4i", x0, y0, x0 + w - 1, y0 + h - 1))
    header += attribute("displayWindow", "box2i", struct.pack("<4i", 0, 0, dw - 1, dh - 1))
    header += attribute("lineOrder", "lineOrder", b"\0") + attribute("pixelAspectRatio", "float", struct.pack("<f", 1))
    header += attribute("screenWindowCenter", "v2f", struct.pack("<2f", 0, 0))
    header += attribute("screenWindowWidth", "float", struct.pack("<f", 1))
    if chromaticities is not None:
        header += attribute("chromaticities", "chromaticities", struct.pack("<8f", *chromaticities))
    if rate is not None:
        header += attribute("framesPerSecond", "rational", struct.pack("<iI", *rate))
    if timecode is not None:
        header += attribute("timeCode", "timecode", struct.pack("<II", timecode, 0))
    header += b"\0"
    blocks = []
    for row in range(h):
        line = b""
        if (y0 + row) % sampling == 0:
            k = (row - first[1]) // sampling
            line += by[k].astype("<f2").tobytes() + ry[k].astype("<f2").tobytes()
        line += lum[row].astype("<f2").tobytes()
        blocks.append(struct.pack("<ii", y0 + row, len(line)) + line)
    offsets, at = [], len(header) + 8 * h
    for block in blocks:
        offsets.append(at)
        at += len(block)
    path.write_bytes(header + struct.pack(f"<{h}Q", *offsets) + b"".join(blocks))
    return path
