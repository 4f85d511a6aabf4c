"""Reading one image file (OpenEXR, DPX, TIFF, PNG, JPEG, TGA, BMP, SGI) with OpenImageIO, the reader
VFX tools share.

`read_header` tells what a file holds (its display window, the channels that make its RGB, bit
depth, pixel aspect, what its header says about colour); `read_pixels` gives the display window's
RGB as stored: uint8, uint16 (10/12/16-bit integer data, scaled to the full 16-bit range) or float32.
OpenEXR's data window is placed inside its display window (black where there is no data), so
mattes line up with the plate pixel for pixel. Luminance/chroma EXRs (Y, RY, BY), which
OpenImageIO cannot read, go through exr_luma_chroma.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import exr_luma_chroma
from .colour import DISPLAY_REFERRED, SCENE_LINEAR, FileColour
from .errors import FootageError
from .orientation import UPRIGHT, Orientation, from_exif

IMAGE_SUFFIXES = (".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".tga", ".bmp", ".sgi", ".webp", ".ppm")
_PREFERRED_LAYERS = ("rgba", "rgb", "beauty", "combined", "color", "colour")


@dataclass(frozen=True)
class ImageHeader:
    path: Path
    format_name: str  # OpenImageIO's name: "openexr", "dpx", "tiff", "png", "jpeg", ...
    size: tuple[int, int]  # (width, height) of the display window, upright
    subimage: int  # the EXR part (OIIO subimage) holding the RGB
    part: str | None  # that part's name, if it has one
    channels: tuple[int, int, int]  # channel indices giving R, G, B
    layer: str | None  # the EXR layer those channels belong to (None: the unnamed layer)
    dtype: str  # "uint8", "uint16" or "float": what read_pixels returns
    bits: int  # bits per sample in the file
    pixel_aspect: float
    orientation: Orientation
    transfer: str | None  # DPX: the header's transfer characteristic
    rate: Fraction | None = None  # frames per second, where the header says
    timecode: str | None = None  # SMPTE timecode of this frame, where the header says
    luma_chroma: bool = False  # an OpenEXR of Y, RY, BY (read by exr_luma_chroma; `channels` unused)
    exr_colour: FileColour | None = None  # what an EXR's header says of its colour (ACES2065-1)

    def file_colour(self) -> FileColour:
        """What the file type (and header) imply about colour, before the user has a say."""
        if self.format_name == "openexr":
            return self.exr_colour or SCENE_LINEAR
        if self.format_name == "dpx":
            return dpx_colour(self.transfer, self.bits, self.path)
        if self.dtype == "float":  # float TIFF and the like: scene-linear by convention
            return SCENE_LINEAR
        return DISPLAY_REFERRED


AP0_CHROMATICITIES = (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767)  # ACES2065-1's primaries, white


def exr_colour(spec, path: Path) -> FileColour | None:
    """ACES2065-1 where an EXR's header says so (the ACES container flag, or AP0 primaries);
    None where it says nothing of use (scene_linear, ACEScg, is then assumed)."""
    flag = spec.get_int_attribute("acesImageContainerFlag", 0)
    chromaticities = spec.getattribute("chromaticities")
    ap0 = (isinstance(chromaticities, tuple) and len(chromaticities) == 8
           and max(abs(a - b) for a, b in zip(chromaticities, AP0_CHROMATICITIES)) < 1e-3)
    if flag == 1 or ap0:
        why = "the ACES container flag" if flag == 1 else "AP0 chromaticities"
        return FileColour("scene", "ACES2065-1", note=f"the header of {path.name} has {why}: read as ACES2065-1",
                          source="header")
    return None


def dpx_colour(transfer: str | None, bits: int, path: Path) -> FileColour:
    """A DPX header's transfer characteristic as a default colour (or the reason there is none)."""
    t = (transfer or "").strip().lower()
    said = f"the DPX header of {path.name} gives its transfer as {transfer!r}"
    if "density" in t or "log" in t or t == "adx":
        # (OpenImageIO scales 10- and 12-bit codes alike to 0..1, so both follow ADX10's curve;
        # ADX16 is an encoding of its own, with black at 1520 of 65535)
        return FileColour("scene", "ADX16" if bits == 16 else "ADX10", note=f"{said} (film log, read as ADX)",
                          source="header")
    if t.startswith("linear"):
        return FileColour("scene", "scene_linear", note=f"{said} (scene-linear)", source="header")
    if any(w in t for w in ("video", "709", "601", "274", "ntsc", "pal", "2020", "61966")):
        return DISPLAY_REFERRED
    return FileColour("unknown", note=f"{path.name}: the DPX header states no usable transfer characteristic "
                                      f"(dpx:Transfer = {transfer!r}).")


def _oiio():
    import OpenImageIO

    return OpenImageIO


def _fail(path: Path, frame: int | None, what: str) -> FootageError:
    where = f"frame {frame} ({path})" if frame is not None else str(path)
    return FootageError(f"Cannot read {where}: {what}. The file is damaged, incomplete or not an image: "
                        "render, export or copy it again.")


def _check_file(path: Path, frame: int | None) -> None:
    if not path.is_file():
        raise FootageError(f"Frame {frame} is missing: {path} does not exist" if frame is not None
                           else f"Image not found: {path}")
    if path.stat().st_size == 0:
        raise _fail(path, frame, "the file is empty (0 bytes)")


def _open(path: Path, frame: int | None):
    _check_file(path, frame)
    oiio = _oiio()
    config = oiio.ImageSpec()
    # (the colour as stored, not multiplied by a PNG's or TIFF's alpha, as the official predictor
    # takes it; an EXR's colour is stored premultiplied anyway)
    config.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(str(path), config)
    if inp is None:
        raise _fail(path, frame, oiio.geterror().strip() or "OpenImageIO cannot open it")
    return inp


def _rgb_channels(names: list[str]) -> tuple[tuple[int, int, int], str | None] | None:
    """Which channels make the picture: the unnamed layer's R, G, B; else a layer's; else grey."""
    lower = [n.lower() for n in names]

    def triple(prefix: str):
        try:
            return tuple(lower.index(f"{prefix}{c}") for c in "rgb")
        except ValueError:
            return None

    found = triple("")
    if found:
        return found, None
    layers = list(dict.fromkeys(n.rsplit(".", 1)[0] for n in names if "." in n))
    with_rgb = [(layer, triple(layer.lower() + ".")) for layer in layers]
    with_rgb = [(layer, t) for layer, t in with_rgb if t]
    if with_rgb:
        preferred = [lt for lt in with_rgb if lt[0].rsplit(".", 1)[-1].lower() in _PREFERRED_LAYERS]
        layer, t = (preferred or with_rgb)[0]
        return t, layer
    for grey in ("y", "l", "luminance", "gray", "grey"):
        if grey in lower:
            i = lower.index(grey)
            return (i, i, i), None
    return None


def _dtype(spec) -> str:
    base = str(spec.format)
    if base in ("uint8", "int8"):
        return "uint8"
    if base in ("uint16", "int16"):
        return "uint16"
    return "float"


def _rate(spec) -> Fraction | None:
    for name in ("FramesPerSecond", "dpx:FrameRate"):
        value = spec.getattribute(name)
        try:
            rate = Fraction(*value) if isinstance(value, tuple) else _frame_rate(float(value))
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if rate > 0:
            return rate
    return None


def _frame_rate(value: float) -> Fraction:
    """A rate stored as a decimal, as the fraction it stands for (23.976 is 24000/1001)."""
    ntsc = round(value * 1.001)
    if ntsc and abs(value - ntsc * 1000 / 1001) < 5e-3:  # (23.98 and 23.976 alike; 24 is 0.024 away)
        return Fraction(ntsc * 1000, 1001)
    return Fraction(value).limit_denominator(1001)


def _timecode(spec) -> str | None:
    """SMPTE 12M time and flags (binary-coded decimal) as HH:MM:SS:FF."""
    value = spec.getattribute("smpte:TimeCode")
    if not isinstance(value, tuple) or not value:
        return None
    v = int(value[0])
    digits = [(v >> 24 & 0xF) + 10 * (v >> 28 & 0x3), (v >> 16 & 0xF) + 10 * (v >> 20 & 0x7),
              (v >> 8 & 0xF) + 10 * (v >> 12 & 0x7), (v & 0xF) + 10 * (v >> 4 & 0x3)]
    return format_timecode(*digits, drop_frame=bool(v & 0x40))  # (bit 6: drop frame)


def format_timecode(hours: int, minutes: int, seconds: int, frame: int, drop_frame: bool) -> str:
    """HH:MM:SS:FF, or HH:MM:SS;FF for drop-frame timecode."""
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{';' if drop_frame else ':'}{frame:02d}"


def read_header(path: str | Path, frame: int | None = None) -> ImageHeader:
    """What `path` holds. `frame` (a frame number) only names the frame in errors."""
    path = Path(path)
    if exr_luma_chroma.is_luma_chroma(path):
        return _luma_chroma_header(path, frame)
    inp = _open(path, frame)
    try:
        subimage, spec, picked = 0, inp.spec(), None
        while True:
            picked = _rgb_channels(list(spec.channelnames))
            if picked or not inp.seek_subimage(subimage + 1, 0):
                break
            subimage += 1
            spec = inp.spec()
        if picked is None:
            inp.seek_subimage(0, 0)
            names = ", ".join(inp.spec().channelnames)
            raise _fail(path, frame, f"no RGB (or grey) channels in it (channels: {names})")
        channels, layer = picked
        part = spec.getattribute("name") if subimage else None
        fmt = inp.format_name()
        dtype = _dtype(spec)
        bits = int(spec.get_int_attribute("oiio:BitsPerSample", 0) or spec.format.size() * 8)
        orientation = from_exif(spec.get_int_attribute("Orientation", 1)) if fmt != "openexr" else UPRIGHT
        aspect = float(spec.get_float_attribute("PixelAspectRatio", 1.0) or 1.0)
        if orientation.transpose and aspect > 0:
            aspect = 1.0 / aspect
        size = orientation.size(spec.full_width, spec.full_height)
        transfer = spec.getattribute("dpx:Transfer") if fmt == "dpx" else None
        said = exr_colour(spec, path) if fmt == "openexr" else None
        return ImageHeader(path, fmt, size, subimage, part, channels, layer, dtype, bits, aspect, orientation, transfer,
                           _rate(spec), _timecode(spec), exr_colour=said)
    finally:
        inp.close()


def _luma_chroma_header(path: Path, frame: int | None) -> ImageHeader:
    try:
        found = exr_luma_chroma.read_header(path)
    except (OSError, RuntimeError, ValueError) as e:
        raise _fail(path, frame, str(e)) from e
    x0, y0, x1, y1 = found["display"]
    rate = found["rate"] if found["rate"] is not None and found["rate"] > 0 else None
    timecode = None if found["timecode"] is None else format_timecode(*found["timecode"])
    return ImageHeader(path, "openexr", (x1 - x0 + 1, y1 - y0 + 1), 0, None, (0, 1, 2), None, "float", found["bits"],
                       found["pixel_aspect"], UPRIGHT, None, rate, timecode, luma_chroma=True)


def read_pixels(path: str | Path, header: ImageHeader, frame: int | None = None) -> np.ndarray:
    """The display window's RGB (H x W x 3) as stored in `path`, in the dtype `header` gives.

    `header` is the sequence's (its first frame's): the channels and part are looked up by name
    again here, since renders may order them differently from frame to frame.
    """
    path = Path(path)
    rgb, offset, full = _read_luma_chroma(path, frame) if header.luma_chroma else _read_rgb(path, header, frame)
    if header.orientation.size(*full) != header.size:
        w, h = header.orientation.size(*full)
        raise FootageError(f"Frame {frame} ({path}) is {w}x{h}, the first frame is "
                           f"{header.size[0]}x{header.size[1]}: all frames of a sequence must have one size; render "
                           "or copy it again at that size")
    return header.orientation.apply(np.ascontiguousarray(_in_display_window(rgb, offset, full)))


def _read_rgb(path: Path, header: ImageHeader, frame: int | None):
    """The data window's RGB, where it sits in the display window, and the display window's size."""
    inp = _open(path, frame)
    try:
        subimage = header.subimage
        if subimage and not inp.seek_subimage(subimage, 0):
            raise _fail(path, frame, f"it has no part {subimage} (the first frame has)")
        spec = inp.spec()
        picked = _rgb_channels(list(spec.channelnames))
        if picked is None or picked[1] != header.layer:
            raise _fail(path, frame, f"its channels ({', '.join(spec.channelnames)}) differ from the first frame's")
        channels = picked[0]
        lo, hi = min(channels), max(channels) + 1
        data = inp.read_image(subimage, 0, lo, hi, header.dtype)
        # (a JPEG cut short still gives pixels, grey where data is missing, and an error)
        if data is None or inp.has_error:
            raise _fail(path, frame, inp.geterror().strip() or "OpenImageIO could not decode its pixels")
    finally:
        inp.close()
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[:, :, None]
    rgb = data[:, :, [c - lo for c in channels]]
    return rgb, (spec.x - spec.full_x, spec.y - spec.full_y), (spec.full_width, spec.full_height)


def _read_luma_chroma(path: Path, frame: int | None):
    _check_file(path, frame)
    try:
        return exr_luma_chroma.read_rgb(path)
    except (OSError, RuntimeError, ValueError) as e:
        raise _fail(path, frame, str(e)) from e


def _in_display_window(rgb: np.ndarray, offset: tuple[int, int], full: tuple[int, int]) -> np.ndarray:
    """`rgb` (a data window at `offset` in the display window) cut and padded to the display window."""
    (dx, dy), (fw, fh) = offset, full
    height, width = rgb.shape[:2]
    if (dx, dy, width, height) == (0, 0, fw, fh):
        return rgb
    canvas = np.zeros((fh, fw, 3), rgb.dtype)  # (black where there is no data)
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + width, fw), min(dy + height, fh)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = rgb[y0 - dy:y1 - dy, x0 - dx:x1 - dx]
    return canvas
