"""Writers that put mattes on disk in the forms compositors and editors read.

Four writers share one small protocol (`MatteWriter`): `write(frame_number, mattes, plate=None)`
once per frame, then `close()`; each is a context manager.

* `AlphaSequenceWriter`: one single-channel image per object per frame (EXR half, 16-bit PNG or TIFF).
* `LayeredExrWriter`: one EXR per frame holding a layer per object (channels `<object>.A`).
* `AlphaVideoWriter`: one object's matte as a video (ProRes 4444 in .mov, or FFV1 in .mkv).
* `PremultipliedWriter`: the plate premultiplied by each object's matte, with that matte as alpha
  (RGBA EXR sequence or ProRes 4444 with alpha), ready to drop over a new background.

Inputs: a matte is an H x W float array in [0, 1] (1 = object); `mattes` maps object names to mattes;
frames are named by the source's frame NUMBER (1001, 1002, ...), which is what the files carry.

Safety rules every writer keeps:

* An image is written to a hidden temporary name in its own folder, read back to prove it is whole,
  and only then renamed onto its final name (`os.replace`, atomic). A killed run therefore loses at
  most the frame in flight and never leaves a half-written image under a final name; its temporary
  file (`.<frame>.<random>.<pid>.partial`) carries no image extension, so no sequence reader picks it up.
* A video is written as `<name>.partial.<ext>` and renamed on `close()`. A video is only usable once
  its export finishes: an interrupted or failed one is removed (or, after a kill, left as
  `.partial`) and must be exported again.
* Failures to write raise `ExportError` (an `OSError`) naming the file and frame; bad inputs raise
  `ValueError` naming the object and frame, before any file of that frame is touched.
* `prepare_output_dir` refuses a folder that already holds files unless `force=True`.

Object names become file and layer names through `safe_name` (see there for the rule).
"""

from __future__ import annotations

import errno as errno_codes
import functools
import os
import re
import secrets
import shutil
import string
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

# OpenEXR compression for every EXR we write. ZIP (deflate over blocks of 16 scanlines) is
# lossless, read by every EXR reader, and on mattes (large flat 0/1 areas, thin soft edges) it
# gives the smallest files of the lossless choices (a 1080p matte: zip 38 KiB, piz 70 KiB,
# zips 87 KiB). PIZ only wins on grainy photographic RGB, and only by a few percent.
EXR_COMPRESSION = "zip"

# image format -> (OpenImageIO writer, file extension)
_IMAGE_FORMATS = {"exr": ("openexr", "exr"), "png16": ("png", "png"), "tiff16": ("tiff", "tif")}
# video codec -> (FFmpeg encoder, container, file extension)
_VIDEO_CODECS = {"prores4444": ("prores_ks", "mov", "mov"), "ffv1": ("ffv1", "matroska", "mkv")}

MAX_NAME_BYTES = 255  # (a file name's length on most file systems)
_LEFTOVER = re.compile(r"^\..+\.\d+\.partial$|^.+\.partial\.(mov|mkv)$")
_OS_JUNK = {".DS_Store", "Thumbs.db", "desktop.ini"}


class ExportError(OSError):
    """A matte file that could not be written; the message names the file and frame and what to do."""

    def __init__(self, message: str, *, errno: int | None = None, path: Path | None = None,
                 frame: int | None = None):
        if errno is None:
            super().__init__(message)
        else:
            super().__init__(errno, message)
        self.message, self.path, self.frame = message, path, frame

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        # keep errno, path and frame across processes (OSError's own pickling would drop them)
        rebuild = functools.partial(type(self), errno=self.errno, path=self.path, frame=self.frame)
        return rebuild, (self.message,)


# -- names and folders ----------------------------------------------------------------------


def safe_name(name: str) -> str:
    """The form of an object name used in file names and EXR layer names.

    Every character other than an ASCII letter, digit or underscore becomes "_" (a dot would split
    the EXR layer name, slashes would make folders, spaces trip up compositor expressions), and a
    name starting with a digit gets a leading "_" (layer names in compositors should start like an
    identifier). "my car.v2" -> "my_car_v2", "2nd" -> "_2nd".
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"object name {name!r}: names must be non-empty text")
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name.strip())
    return "_" + safe if safe[0].isdigit() else safe


def safe_names(names: Iterable[str], frame: int | None = None, *, file_names: bool = True) -> dict[str, str]:
    """object name -> safe name, refusing two objects that would land on the same files (or the
    same layer: `file_names=False`, where case tells names apart and length is no matter)."""
    where = f"frame {frame}: " if frame is not None else ""
    safe: dict[str, str] = {}
    for name in names:
        try:
            s = safe_name(name)
        except ValueError as e:
            raise ValueError(f"{where}{e}") from None
        fold = str.casefold if file_names else str
        clash = next((other for other, t in safe.items() if fold(t) == fold(s)), None)
        if clash is not None and safe[clash] == s:
            raise ValueError(f"{where}objects {clash!r} and {name!r} both become {s!r} in file and layer "
                             "names: rename one of them")
        if clash is not None:  # (Windows and macOS do not tell Car/ from car/)
            raise ValueError(f"{where}objects {clash!r} and {name!r} become {safe[clash]!r} and {s!r} in file "
                             "names, the same files on Windows and macOS: rename one of them")
        if file_names and len(f"{s}_premult.-0000001.exr".encode()) > MAX_NAME_BYTES:
            raise ValueError(f"{where}object name {name!r} is too long for file names: shorten it")
        safe[name] = s
    return safe


def _check_pattern(pattern: str, required: tuple[str, ...]) -> str:
    fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    fields = {f.split(".")[0].split("[")[0] for f in fields}
    unknown = fields - {"object", "frame", "ext"}
    missing = set(required) - fields
    if unknown or missing:
        raise ValueError(f"file pattern {pattern!r}: it must use {', '.join('{' + f + '}' for f in required)} "
                         f"and may use only {{object}}, {{frame}} and {{ext}}")
    sample = Path(pattern.format(object="x", frame=1, ext="x"))
    if sample.is_absolute() or ".." in sample.parts:
        raise ValueError(f"file pattern {pattern!r} must name a file inside the output folder")
    return pattern


def prepare_output_dir(out_dir: str | Path, force: bool = False, expected: Iterable[str | Path] = (),
                       ignore: Iterable[str | Path] = ()) -> Path:
    """Make `out_dir` ready for an export and return it.

    A missing folder is created; an empty one is used as it is. A folder that already holds files
    is refused (ExportError naming the folder and a few of the files) unless `force` is true,
    because an export must never silently overwrite or mix with earlier work. `expected` lists the
    files this export will write (relative to `out_dir`, or absolute; see each writer's
    `expected_files`), so the message can say which files would be overwritten.

    With `force`, the export's own files are overwritten as they are rewritten and leftovers of an
    interrupted export (temporary `.partial` files) are deleted; every other file is left alone.
    Files inside the `ignore` folders (a shot folder kept in the output folder) do not count.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"The output folder {out} is a file: choose a folder for the export",
                          errno=errno_codes.ENOTDIR, path=out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"Cannot create the output folder {out}: {e.strerror}", errno=e.errno, path=out) from e
    planned = {os.path.normpath(out / p) for p in expected}
    skipped = [os.path.abspath(p) + os.sep for p in ignore]
    existing = sorted(Path(root) / f for root, _, files in os.walk(out) for f in files
                      if f not in _OS_JUNK and not any((os.path.abspath(root) + os.sep).startswith(s) for s in skipped))
    if not existing:
        return out
    leftovers = [p for p in existing if _LEFTOVER.match(p.name)]
    if not force:
        overwritten = [p for p in existing if os.path.normpath(p) in planned]
        examples = list(dict.fromkeys(overwritten + existing))[:3]  # files it would overwrite first
        shown = ", ".join(str(p.relative_to(out)) for p in examples)
        more = f" ({len(overwritten)} of them would be overwritten by this export)" if overwritten else ""
        raise ExportError(f"The output folder {out} already holds {len(existing)} file(s){more}, e.g. {shown}: "
                          "choose an empty folder, or export with --force to overwrite this export's files "
                          "(other files are left as they are)", errno=errno_codes.EEXIST, path=out)
    for p in leftovers:
        p.unlink(missing_ok=True)
    return out


# -- checking inputs ------------------------------------------------------------------------


def check_mattes(frame_number: int, mattes: Mapping[str, np.ndarray],
                 shape: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """The mattes as float32 H x W arrays, or ValueError naming the frame and object at fault.

    `shape` (H, W) is the size every matte must have (the source's); None accepts any one size.
    Everything is checked before anything is written, so a bad matte leaves no file behind.
    """
    if isinstance(frame_number, bool) or not isinstance(frame_number, (int, np.integer)):
        raise ValueError(f"frame number {frame_number!r}: frames are named by whole numbers (e.g. 1001)")
    if not isinstance(mattes, Mapping) or not mattes:
        raise ValueError(f"frame {frame_number}: no mattes given (expected a dict of object name -> matte)")
    clean = {}
    for name, matte in mattes.items():
        where = f"frame {frame_number}, object {name!r}"
        a = np.asarray(matte)
        if a.ndim != 2:
            raise ValueError(f"{where}: the matte is {a.shape}, expected an H x W array")
        if a.dtype != bool and not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{where}: the matte is {a.dtype}, expected floats in [0, 1]")
        if shape is None:  # no size given: the first matte sets it for the others
            shape = a.shape
        want = tuple(shape)
        if a.shape != want:
            raise ValueError(f"{where}: the matte is {a.shape[1]}x{a.shape[0]}, expected {want[1]}x{want[0]} "
                             "(the size of the source)")
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"{where}: the matte holds NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1e-6 or hi > 1 + 1e-6:  # tolerate float rounding, nothing more
            raise ValueError(f"{where}: matte values run from {lo:g} to {hi:g}, expected [0, 1]")
        clean[name] = np.clip(a, 0.0, 1.0)
    return clean


HALF_MAX = 65504.0  # the largest half-float value: EXR mattes and plates are written as half


def _plate_as_float(frame_number: int, plate, shape: tuple[int, int]) -> np.ndarray:
    """The plate as float32 H x W x 3: 8- and 16-bit values become 0..1 (still in their own
    encoding), floats stay as given."""
    if plate is None:
        raise ValueError(f"frame {frame_number}: this writer needs the plate (the source frame)")
    p = np.asarray(plate)
    if p.ndim != 3 or p.shape[2] != 3 or p.shape[:2] != tuple(shape):
        raise ValueError(f"frame {frame_number}: the plate is {p.shape}, expected {shape[0]} x {shape[1]} x 3 "
                         "(the mattes' size, RGB)")
    if p.dtype in (np.uint8, np.uint16):
        return p.astype(np.float32) / np.iinfo(p.dtype).max
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"frame {frame_number}: the plate is {p.dtype}, expected uint8, uint16 or float")
    # (a render's stray NaN or inf pixel: black, or the largest half-float value, not a failed export)
    plate = np.nan_to_num(p.astype(np.float32), nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX)
    return np.clip(plate, -HALF_MAX, HALF_MAX)  # (a value past half float's range would be stored as inf)


# -- writing one image safely ---------------------------------------------------------------


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return -1


def _oiio_write(path: Path, pixels: np.ndarray, spec, oiio_format: str) -> None:
    """Encode `pixels` (H x W x C) into `path`; OSError when OpenImageIO reports a failure."""
    import OpenImageIO as oiio

    out = oiio.ImageOutput.create(oiio_format)
    if out is None:
        raise OSError(errno_codes.EIO, f"OpenImageIO cannot write {oiio_format}: {oiio.geterror()}")
    if not out.open(str(path), spec):
        raise OSError(errno_codes.EIO, out.geterror() or oiio.geterror())
    ok = out.write_image(pixels)
    message = out.geterror()
    ok = out.close() and ok
    if not ok:
        raise OSError(errno_codes.EIO, message or out.geterror() or "the image encoder failed")


def _verify(path: Path, shape: tuple[int, ...]) -> None:
    """Read the file back. Encoders do not all report a failed write (OpenImageIO's PNG writer
    returns success on a full disk), so an image is only renamed into place once it decodes."""
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise OSError(errno_codes.EIO, f"the written file does not open: {oiio.geterror()}")
    try:
        data = inp.read_image()
        if data is None or data.shape[:2] != shape[:2]:
            raise OSError(errno_codes.EIO, f"the written file does not read back whole: {inp.geterror()}")
    finally:
        inp.close()


def _fsync(path: Path) -> None:
    # so a power cut cannot leave the renamed file empty (the rename reaching disk before the data)
    with open(path, "r+b") as f:
        os.fsync(f.fileno())


def write_image_atomically(path: Path, pixels: np.ndarray, channels: tuple[str, ...], image_format: str,
                           frame_number: int, pixel_aspect: float = 1.0, alpha_channel: int = -1,
                           compression: str = EXR_COMPRESSION) -> Path:
    """Write one image (pixels H x W x C, float32 for EXR, uint16 for PNG/TIFF) to `path`, whole or not at all."""
    import OpenImageIO as oiio

    oiio_format, _ = _IMAGE_FORMATS[image_format]
    h, w, c = pixels.shape
    spec = oiio.ImageSpec(w, h, c, oiio.HALF if image_format == "exr" else oiio.UINT16)
    spec.channelnames = channels
    spec.alpha_channel = alpha_channel
    spec.attribute("PixelAspectRatio", float(pixel_aspect))
    spec.attribute("compression", compression if image_format == "exr" else "zip")
    if image_format != "exr":  # alpha, not sRGB colour: a PNG says gamma 1.0 (no sRGB or chromaticity chunks)
        spec.attribute("oiio:ColorSpace", "lin_rec709")
    tmp = path.with_name(f".{frame_number}.{secrets.token_hex(4)}.{os.getpid()}.partial")  # (short, whatever the name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # OpenImageIO's Python binding misreads 2-D arrays, so pixels are always H x W x C
            _oiio_write(tmp, np.ascontiguousarray(pixels), spec, oiio_format)
            _verify(tmp, pixels.shape)
        except OSError as e:
            # OpenImageIO loses errno: a failure with less room left than the raw image is a full disk
            if e.errno == errno_codes.EIO and 0 <= _free_bytes(path.parent) < pixels.nbytes + (1 << 20):
                raise OSError(errno_codes.ENOSPC, os.strerror(errno_codes.ENOSPC)) from e
            raise
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        raise _export_error(e, path, frame_number, "frames already written are complete") from e
    except BaseException:
        _remove_quietly(tmp)  # interrupted (Ctrl-C): the frame in flight is simply not written
        raise
    return path


def _remove_quietly(path: Path) -> None:
    """Remove a temporary file; failing to (the disk gone) must not hide why it is there."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _export_error(e: OSError, path: Path, frame_number: int | None, after: str) -> ExportError:
    where = f"{path} (frame {frame_number})" if frame_number is not None else str(path)
    if e.errno in (errno_codes.ENOSPC, errno_codes.EDQUOT):
        full = "the disk is full" if e.errno == errno_codes.ENOSPC else "the disk quota is used up"
        message = f"{full} while writing {where}: free space and export again; {after}"
    elif e.errno in (errno_codes.EACCES, errno_codes.EPERM, errno_codes.EROFS):
        message = f"cannot write {where}: the folder is not writable ({e.strerror}); {after}"
    else:
        message = f"cannot write {where}: {e.strerror or e}; {after}"
    return ExportError(message, errno=e.errno, path=path, frame=frame_number)


# -- the writers ----------------------------------------------------------------------------


@runtime_checkable
class MatteWriter(Protocol):
    def write(self, frame_number: int, mattes: dict[str, np.ndarray], plate: np.ndarray | None = None) -> list[Path]:
        """Write one frame; returns the files completed by this call (videos complete theirs in close())."""
        ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Stop after an error; images already written stay, unfinished videos are removed."""
        ...

    def expected_files(self, frame_numbers: Iterable[int], objects: Iterable[str]) -> list[Path]:
        """The files an export of these frames and objects produces (for prepare_output_dir)."""
        ...


class _Writer:
    """Context-manager plumbing: a clean exit closes, an exception aborts (no video is finalised)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """Stop after an error; images already written stay, unfinished videos are removed."""
        pass


class _SequenceWriter(_Writer):
    """Shared by the image-sequence writers: the output folder, the file pattern, the fixed size."""

    def __init__(self, out_dir: str | Path, pattern: str, required: tuple[str, ...], pixel_aspect: float):
        if not pixel_aspect > 0:
            raise ValueError(f"pixel aspect {pixel_aspect!r} must be positive")
        self.out_dir = Path(out_dir)
        self.pattern = _check_pattern(pattern, required)
        self.pixel_aspect = float(pixel_aspect)
        self.shape: tuple[int, int] | None = None  # (H, W), fixed by the first frame

    def _path(self, frame_number: int, safe_object: str = "", ext: str = "") -> Path:
        return self.out_dir / self.pattern.format(object=safe_object, frame=int(frame_number), ext=ext)

    def _check(self, frame_number: int, mattes) -> dict[str, np.ndarray]:
        clean = check_mattes(frame_number, mattes, self.shape)
        self.shape = next(iter(clean.values())).shape
        return clean


class AlphaSequenceWriter(_SequenceWriter):
    """One single-channel image per object per frame.

    fmt "exr": half float, channel "A" (read as the alpha of the rgba layer), ZIP compression.
    fmt "png16" / "tiff16": 16-bit grey (a luma matte), value = round(alpha * 65535), deflate.
    Every format records `pixel_aspect` (EXR pixelAspectRatio; PNG pHYs; TIFF resolution).
    Pass every object every frame (an empty matte where it is absent) so sequences have no gaps.
    """

    def __init__(self, out_dir: str | Path, fmt: str = "exr", pattern: str = "{object}/{object}.{frame:04d}.{ext}",
                 pixel_aspect: float = 1.0):
        if fmt not in _IMAGE_FORMATS:
            raise ValueError(f"image format {fmt!r}: choose one of {', '.join(_IMAGE_FORMATS)}")
        super().__init__(out_dir, pattern, ("object", "frame"), pixel_aspect)
        self.fmt = fmt
        self.ext = _IMAGE_FORMATS[fmt][1]

    def expected_files(self, frame_numbers: Iterable[int], objects: Iterable[str]) -> list[Path]:
        safe = safe_names(objects)
        return [self._path(n, s, self.ext) for n in frame_numbers for s in safe.values()]

    def write(self, frame_number: int, mattes: dict[str, np.ndarray], plate: np.ndarray | None = None) -> list[Path]:
        clean = self._check(frame_number, mattes)
        safe = safe_names(clean, frame_number)
        written = []
        for name, matte in clean.items():
            if self.fmt == "exr":
                pixels = matte[:, :, None]
            else:
                pixels = np.round(matte * 65535.0).astype(np.uint16)[:, :, None]
            written.append(write_image_atomically(self._path(frame_number, safe[name], self.ext), pixels,
                                                  ("A",) if self.fmt == "exr" else ("Y",), self.fmt, frame_number,
                                                  self.pixel_aspect, alpha_channel=0 if self.fmt == "exr" else -1))
        return written


class LayeredExrWriter(_SequenceWriter):
    """One EXR per frame with a layer per object: channel "<safe_name(object)>.A", half float, ZIP.

    Nuke, Fusion, Natron and Resolve list these as layers (one per object) of a single read node.
    """

    def __init__(self, out_dir: str | Path, pattern: str = "mattes.{frame:04d}.exr", pixel_aspect: float = 1.0):
        super().__init__(out_dir, pattern, ("frame",), pixel_aspect)

    def expected_files(self, frame_numbers: Iterable[int], objects: Iterable[str] = ()) -> list[Path]:
        return [self._path(n, ext="exr") for n in frame_numbers]

    def write(self, frame_number: int, mattes: dict[str, np.ndarray], plate: np.ndarray | None = None) -> list[Path]:
        clean = self._check(frame_number, mattes)
        safe = safe_names(clean, frame_number, file_names=False)  # (layers of one file)
        pixels = np.stack(list(clean.values()), axis=-1)
        channels = tuple(f"{safe[name]}.A" for name in clean)
        return [write_image_atomically(self._path(frame_number, ext="exr"), pixels, channels, "exr",
                                       frame_number, self.pixel_aspect)]


# -- video ----------------------------------------------------------------------------------


def _as_rate(rate) -> Fraction:
    """A frame rate as an exact fraction; 23.976, 29.97 and 59.94 mean the NTSC rates (n * 1000/1001)."""
    r = Fraction(rate) if isinstance(rate, (int, Fraction, str)) else Fraction(float(rate))
    if r <= 0:
        raise ValueError(f"frame rate {rate!r} must be positive")
    ntsc = Fraction(round(r * Fraction(1001, 1000)) * 1000, 1001)
    if r.denominator != 1 and abs(r - ntsc) < Fraction(1, 1000):
        return ntsc
    return r.limit_denominator(1001)


def _timecode(frame_number: int, rate: Fraction, footage: tuple[int, str] | None = None) -> str | None:
    """The timecode of a frame: the footage's own where it has one (`footage`: a frame number and
    its timecode, so an editor conforms the mattes to the plates), else the frame number as
    non-drop-frame timecode counted at the nominal rate (24 for 23.976: a video whose first
    frame is 1001 starts at 00:00:41:17 at 24 fps); None for negative frames."""
    fps = max(1, round(rate))
    if footage is not None:
        number, timecode = footage
        if frame_number == number:
            return timecode
        hh_mm_ss_ff = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", timecode)  # (drop-frame ones only as they are)
        if hh_mm_ss_ff:
            h, m, s, f = (int(g) for g in hh_mm_ss_ff.groups())
            frame_number += ((h * 60 + m) * 60 + s) * fps + f - number
    if frame_number < 0:
        return None
    seconds, ff = divmod(int(frame_number), fps)
    return f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{ff:02d}"


def _ycbcr709_10bit(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB in [0, 1] to BT.709 limited-range 10-bit Y'CbCr, the encoding ProRes players expect."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    cb, cr = (b - y) / 1.8556, (r - y) / 1.5748
    to10 = lambda v: np.round(v).astype(np.uint16)  # noqa: E731
    return to10(64 + 876 * y), to10(512 + 896 * cb), to10(512 + 896 * cr)


class _VideoFile:
    """One video being written: opened at the first frame as <name>.partial.<ext>, renamed on close."""

    def __init__(self, path: Path, codec: str, rate: Fraction, pixel_aspect: float,
                 footage_timecode: tuple[int, str] | None = None):
        self.path, self.codec, self.rate, self.pixel_aspect = path, codec, rate, pixel_aspect
        self.footage_timecode = footage_timecode
        self.partial = path.with_name(f"{path.stem}.partial{path.suffix}")
        self.container = self.stream = None
        self.first = self.last = None

    def _open(self, frame_number: int, width: int, height: int) -> None:
        import av

        encoder, container_format, _ = _VIDEO_CODECS[self.codec]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.codec == "prores4444":
            # profile 4444 with a 16-bit alpha plane; vendor apl0 so Apple software accepts the file
            options, pix_fmt = {"profile": "4444", "vendor": "apl0", "alpha_bits": "16"}, "yuva444p10le"
        else:
            # level 3 with slice CRCs: the archival FFV1 flavour, damage is detectable per slice
            options, pix_fmt = {"level": "3", "slicecrc": "1"}, "gray16le"
        self.container = av.open(str(self.partial), "w", format=container_format)
        stream = self.container.add_stream(encoder, rate=self.rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.sample_aspect_ratio = Fraction(self.pixel_aspect).limit_denominator(1000)
        tc = _timecode(frame_number, self.rate, self.footage_timecode)
        if tc:
            stream.metadata["timecode"] = tc  # a tmcd track in .mov, a TIMECODE tag in .mkv
        self.stream, self.pix_fmt, self.first = stream, pix_fmt, frame_number

    def add(self, frame_number: int, planes: list[np.ndarray]) -> None:
        """Encode one frame from its uint16 planes (Y, Cb, Cr, A for ProRes; grey for FFV1)."""
        import av

        if self.last is not None and frame_number <= self.last:
            raise ValueError(f"frame {frame_number} comes after frame {self.last}: video frames must be "
                             "written in increasing order")
        h, w = planes[0].shape
        if self.container is None:
            self._open(frame_number, w, h)
        frame = av.VideoFrame(w, h, self.pix_fmt)
        for plane, values in zip(frame.planes, planes):
            padded = np.zeros((plane.height, plane.line_size // 2), np.uint16)
            padded[:, :w] = values
            plane.update(padded.tobytes())
        # colour tags travel on the frame: BT.709 limited range for ProRes, full-range grey for FFV1
        frame.color_range = 1 if self.codec == "prores4444" else 2
        if self.codec == "prores4444":
            frame.colorspace = frame.color_primaries = frame.color_trc = 1
        # pts counts from the first frame, so a gap in the numbers stays a gap in time
        frame.pts = frame_number - self.first
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.last = frame_number

    def close(self) -> None:
        if self.container is None:
            return
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        self.container = None
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - the file is being discarded anyway
                pass
            self.container = None
        self.partial.unlink(missing_ok=True)


def _video_error(e: Exception, video: _VideoFile, frame_number: int | None) -> ExportError:
    video.abort()
    os_error = e if isinstance(e, OSError) else OSError(errno_codes.EIO, str(e))
    return _export_error(os_error, video.partial, frame_number,
                         "a video is complete only once its export finishes, so this one was removed "
                         "(files already finished are intact)")


def _check_video_path(path: Path, codec: str) -> Path:
    if codec not in _VIDEO_CODECS:
        raise ValueError(f"video codec {codec!r}: choose one of {', '.join(_VIDEO_CODECS)}")
    ext = _VIDEO_CODECS[codec][2]
    if path.suffix.lower() != "." + ext:
        raise ValueError(f"{path}: {codec} video is written as .{ext}")
    return path


def _encode_guarded(video: _VideoFile, frame_number: int, planes: list[np.ndarray]) -> None:
    import av

    try:
        video.add(frame_number, planes)
    except (OSError, av.error.FFmpegError) as e:
        raise _video_error(e, video, frame_number) from e


def _close_guarded(video: _VideoFile) -> None:
    import av

    try:
        video.close()
    except (OSError, av.error.FFmpegError) as e:
        raise _video_error(e, video, video.last) from e


class AlphaVideoWriter(_Writer):
    """One object's matte as a video.

    codec "prores4444" (.mov): the matte is both the alpha plane (full range) and the picture
    (luma = matte, BT.709 limited range, no colour), so it reads as a matte in any editor, with or
    without alpha support. Lossy but close (within ~1%).
    codec "ffv1" (.mkv): 16-bit grey, value = round(alpha * 65535), lossless. Matroska written by
    PyAV cannot record a pixel aspect, so FFV1 only takes square pixels.

    Frame numbers: the video's start timecode is the footage's at that frame where
    `footage_timecode` (a frame number, its timecode) gives it, else the first frame's number
    (non-drop-frame, counted at the nominal rate: 1001 at 24 fps is 00:00:41:17); frames follow
    in increasing order, one video frame per written frame; a gap in the numbers is held as a
    longer frame. The file appears on close().
    """

    def __init__(self, path: str | Path, rate, size: tuple[int, int], codec: str = "prores4444",
                 pixel_aspect: float = 1.0, object_name: str | None = None,
                 footage_timecode: tuple[int, str] | None = None):
        self.path = _check_video_path(Path(path), codec)
        if codec == "ffv1" and abs(pixel_aspect - 1.0) > 1e-6:
            raise ValueError(f"{self.path}: FFV1 video cannot record pixel aspect {pixel_aspect:g}: export "
                             "ProRes (format prores) or an image sequence")
        if not pixel_aspect > 0:
            raise ValueError(f"pixel aspect {pixel_aspect!r} must be positive")
        self.codec, self.size, self.object_name = codec, (int(size[0]), int(size[1])), object_name
        self._video = _VideoFile(self.path, codec, _as_rate(rate), float(pixel_aspect), footage_timecode)

    def expected_files(self, frame_numbers: Iterable[int] = (), objects: Iterable[str] = ()) -> list[Path]:
        return [self.path]

    def write(self, frame_number: int, mattes: dict[str, np.ndarray], plate: np.ndarray | None = None) -> list[Path]:
        name = self.object_name
        if name is None:
            if len(mattes) != 1:
                raise ValueError(f"frame {frame_number}: {self.path.name} holds one object, {len(mattes)} were "
                                 "given: pass object_name")
            name = next(iter(mattes))
        if name not in mattes:
            raise ValueError(f"frame {frame_number}: no matte for object {name!r} (given: {', '.join(mattes)})")
        matte = check_mattes(frame_number, {name: mattes[name]}, self.size[::-1])[name]
        if self.codec == "prores4444":
            y, cb, cr = _ycbcr709_10bit(np.repeat(matte[:, :, None], 3, axis=2))
            planes = [y, cb, cr, np.round(matte * 1023).astype(np.uint16)]
        else:
            planes = [np.round(matte * 65535).astype(np.uint16)]
        _encode_guarded(self._video, frame_number, planes)
        return []

    def close(self) -> None:
        _close_guarded(self._video)

    def abort(self) -> None:
        self._video.abort()


class PremultipliedWriter(_Writer):
    """The plate premultiplied by each object's matte, with the matte as alpha, per object.

    fmt "exr": an RGBA half EXR sequence per object (EXR's own convention is premultiplied), ZIP,
    default pattern "{object}_premult/{object}_premult.{frame:04d}.exr".
    fmt "prores4444": a ProRes 4444 .mov with alpha per object ("{object}_premult.mov"); needs `rate`.

    The RGB is the plate's values as given, times alpha: an 8- or 16-bit plate scaled to 0..1 in
    its own encoding, a float plate as it is (clipped to 0..1 for ProRes). Exports give it the
    plate as stored (`wants_stored_plate`): a linear EXR stays linear, a log DPX log.
    """

    wants_stored_plate = True

    def __init__(self, out_dir: str | Path, fmt: str = "exr", pattern: str | None = None, rate=None,
                 pixel_aspect: float = 1.0, footage_timecode: tuple[int, str] | None = None):
        if fmt not in ("exr", "prores4444"):
            raise ValueError(f"premultiplied format {fmt!r}: choose 'exr' or 'prores4444'")
        if fmt == "prores4444" and rate is None:
            raise ValueError("a ProRes export needs the frame rate (rate=...)")
        default = "{object}_premult/{object}_premult.{frame:04d}.exr" if fmt == "exr" else "{object}_premult.mov"
        required = ("object", "frame") if fmt == "exr" else ("object",)
        self._seq = _SequenceWriter(out_dir, pattern or default, required, pixel_aspect)
        self.fmt, self.out_dir, self.pixel_aspect = fmt, Path(out_dir), float(pixel_aspect)
        self.rate = _as_rate(rate) if rate is not None else None
        self.footage_timecode = footage_timecode  # (for ProRes: see AlphaVideoWriter)
        self._videos: dict[str, _VideoFile] = {}

    def expected_files(self, frame_numbers: Iterable[int], objects: Iterable[str]) -> list[Path]:
        safe = safe_names(objects)
        if self.fmt == "exr":
            return [self._seq._path(n, s, "exr") for n in frame_numbers for s in safe.values()]
        return [self._seq._path(0, s, "mov") for s in safe.values()]

    def write(self, frame_number: int, mattes: dict[str, np.ndarray], plate: np.ndarray | None = None) -> list[Path]:
        clean = self._seq._check(frame_number, mattes)
        rgb = _plate_as_float(frame_number, plate, self._seq.shape)
        safe = safe_names(clean, frame_number)
        written = []
        for name, alpha in clean.items():
            a = alpha[:, :, None]
            if self.fmt == "exr":
                path = self._seq._path(frame_number, safe[name], "exr")
                written.append(write_image_atomically(path, np.concatenate([rgb * a, a], axis=2), ("R", "G", "B", "A"),
                                                      "exr", frame_number, self.pixel_aspect, alpha_channel=3))
            else:
                y, cb, cr = _ycbcr709_10bit(np.clip(rgb, 0.0, 1.0) * a)
                planes = [y, cb, cr, np.round(alpha * 1023).astype(np.uint16)]
                _encode_guarded(self._video(safe[name]), frame_number, planes)
        return written

    def _video(self, safe: str) -> _VideoFile:
        if safe not in self._videos:
            path = _check_video_path(self._seq._path(0, safe, "mov"), "prores4444")
            self._videos[safe] = _VideoFile(path, "prores4444", self.rate, self.pixel_aspect, self.footage_timecode)
        return self._videos[safe]

    def close(self) -> None:
        try:
            for video in self._videos.values():
                _close_guarded(video)
        except BaseException:  # (Ctrl-C too)
            self.abort()  # removes the videos not finished yet; finished ones stay
            raise

    def abort(self) -> None:
        for video in self._videos.values():
            video.abort()
