"""Luminance/chroma OpenEXR files: channels Y, RY and BY instead of R, G and B.

OpenEXR's lossy "YC" mode stores luminance at full resolution and two chroma channels, usually
at half resolution both ways. OpenImageIO refuses subsampled channels, so these files are read
with the OpenEXR library and turned back into RGB as OpenEXR defines the channels:

    Y  = wr R + wg G + wb B      (the luminance weights of the file's primaries)
    RY = (R - Y) / Y
    BY = (B - Y) / Y

A chroma sample sits on the pixel whose coordinates are multiples of the sampling; the pixels
between samples are interpolated linearly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EXR_MAGIC = b"\x76\x2f\x31\x01"
LUMA_CHROMA_CHANNELS = {"Y", "RY", "BY"}
REC709_CHROMATICITIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), (0.3127, 0.3290))  # R, G, B, white


def is_luma_chroma(path: Path) -> bool:
    """Whether `path` is an OpenEXR file whose picture is Y, RY and BY (its unnamed layer)."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != EXR_MAGIC:
                return False
        return LUMA_CHROMA_CHANNELS <= {c.name for c in _open(path, header_only=True).header()["channels"]}
    except (OSError, RuntimeError, ValueError, ArithmeticError):  # (a frame rate of 24/0 is a ZeroDivisionError)
        return False  # (OpenImageIO's reading then says what is wrong with the file)


def read_header(path: Path) -> dict:
    """What the reader needs of the header: the `display` and `data` windows as (x0, y0, x1, y1),
    inclusive as EXR gives them; `bits` per sample of Y; `pixel_aspect`; `rate` (frames per
    second, a Fraction) and `timecode` (hours, minutes, seconds, frame, drop frame), None where
    the header does not say."""
    exr = _open(path)  # (with its pixels: a header alone does not tell the channels' types)
    header = exr.header()
    luminance = exr.channels().get("Y")
    bits = 16 if luminance is not None and luminance.pixels.dtype == np.float16 else 32
    return {"display": _box(header["displayWindow"]), "data": _box(header["dataWindow"]), "bits": bits,
            "pixel_aspect": float(header.get("pixelAspectRatio", 1.0)), "rate": header.get("framesPerSecond"),
            "timecode": _timecode_fields(header.get("timeCode"))}


def read_rgb(path: Path) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """The data window's RGB (H x W x 3 float32), where it sits in the display window (x, y) and
    the display window's size (width, height)."""
    exr = _open(path)
    header = exr.header()
    channels = {name: c for name, c in exr.channels().items() if name in LUMA_CHROMA_CHANNELS}
    if set(channels) != LUMA_CHROMA_CHANNELS:
        raise ValueError(f"its channels ({', '.join(exr.channels())}) are not Y, RY and BY")
    x0, y0, x1, y1 = _box(header["dataWindow"])
    width, height = x1 - x0 + 1, y1 - y0 + 1
    y = channels["Y"].pixels.astype(np.float32)
    ry = _upsample(channels["RY"], (x0, y0), (width, height))
    by = _upsample(channels["BY"], (x0, y0), (width, height))
    wr, wg, wb = luminance_weights(header.get("chromaticities"))
    r, b = (ry + 1.0) * y, (by + 1.0) * y
    g = (y - wr * r - wb * b) / wg
    dx0, dy0, dx1, dy1 = _box(header["displayWindow"])
    return np.stack([r, g, b], axis=-1), (x0 - dx0, y0 - dy0), (dx1 - dx0 + 1, dy1 - dy0 + 1)


def luminance_weights(chromaticities=None) -> tuple[float, float, float]:
    """How much R, G and B give to Y for these primaries (Rec.709 when the file names none): the
    Y row of the RGB-to-XYZ matrix that maps RGB (1, 1, 1) to the white point at Y = 1."""
    xy = REC709_CHROMATICITIES if chromaticities is None else np.reshape(np.asarray(chromaticities, float), (4, 2))
    primaries = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in xy[:3]]).T  # columns: XYZ of R, G, B at Y = 1
    wx, wy = xy[3]
    scale = np.linalg.solve(primaries, [wx / wy, 1.0, (1 - wx - wy) / wy])
    return tuple(float(s) for s in scale)


def _upsample(channel, origin: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """A channel at full resolution over the data window (linear between samples, held at the edges)."""
    samples = channel.pixels.astype(np.float32)
    rows = _between_samples(origin[1], size[1], channel.ySampling, samples.shape[0])
    cols = _between_samples(origin[0], size[0], channel.xSampling, samples.shape[1])
    (r0, r1, rt), (c0, c1, ct) = rows, cols
    top = samples[r0][:, c0] * (1 - ct) + samples[r0][:, c1] * ct
    bottom = samples[r1][:, c0] * (1 - ct) + samples[r1][:, c1] * ct
    return top * (1 - rt)[:, None] + bottom * rt[:, None]


def _between_samples(start: int, count: int, sampling: int, n_samples: int):
    """For each pixel start..start+count-1: the samples before and after it, and how far between."""
    pixels = np.arange(start, start + count)
    first = -(-start // sampling)  # the first sample's coordinate / sampling
    position = np.clip(pixels / sampling - first, 0, n_samples - 1)
    before = np.floor(position).astype(int)
    after = np.minimum(before + 1, n_samples - 1)
    return before, after, (position - before).astype(np.float32)


def _open(path: Path, header_only: bool = False):
    import OpenEXR

    return OpenEXR.File(str(path), separate_channels=True, header_only=header_only)


def _timecode_fields(timecode) -> tuple[int, int, int, int, bool] | None:
    if timecode is None:
        return None
    return timecode.hours, timecode.minutes, timecode.seconds, timecode.frame, bool(timecode.dropFrame)


def _box(window) -> tuple[int, int, int, int]:
    (x0, y0), (x1, y1) = window
    return int(x0), int(y0), int(x1), int(y1)
