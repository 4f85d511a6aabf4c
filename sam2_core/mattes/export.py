"""Export: stored tracking results -> soft, cleaned-up mattes -> files, frame by frame.
Runs from what is on disk, so a shot exports again without tracking again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from . import writers
from .cleanup import Cleanup
from .shapes import shapes_from_mattes, write_shapes_json
from .soft import soft_matte

# what users name on the command line and in the service -> (kind of writer, codec)
FORMATS = {
    "png16": ("sequence", "png16"), "tiff16": ("sequence", "tiff16"), "exr": ("sequence", "exr"),
    "layered-exr": ("layered", "exr"), "prores": ("video", "prores4444"), "ffv1": ("video", "ffv1"),
    "premult-exr": ("premult", "exr"), "premult-prores": ("premult", "prores4444"),
}

Frame = tuple[int, int, dict[str, np.ndarray], np.ndarray]


def mattes_of(tracker, objects: dict[int, str], *, guided: bool = True,
              cleanup: dict[int, Cleanup] | None = None, stored_plate: bool = False) -> Iterator[Frame]:
    """(frame index, frame number, {object name: alpha}, plate) for every frame of the
    source; an object with no result on a frame gets an empty matte there. The plate is the
    model's input (display sRGB, 8-bit), or with `stored_plate` the frame as stored where the
    source can give it (`read_raw`: a linear EXR's floats, a 10-bit video's 16-bit values)."""
    source = tracker.source
    w, h = source.size
    cleanup = cleanup or {}
    per_object_streams = {}
    # decoding (and colour-converting) a frame is costly: each is read once, kept while the
    # per-object streams (which temporal smoothing runs ahead) may still ask for it
    keep = 2 * max((c.temporal for c in cleanup.values()), default=0) + 2
    plates: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # index -> (model's input, as stored)
    read_stored = stored_plate and hasattr(source, "read_raw")

    def both(i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in plates:
            rgb = source.read(i)
            plates[i] = rgb, source.read_raw(i) if read_stored else rgb  # (a video decodes the frame once)
            for old in [k for k in plates if k < i - keep]:
                del plates[old]
        return plates[i]

    def plate(i: int) -> np.ndarray:
        return both(i)[0]

    def stored(i: int) -> np.ndarray:
        return both(i)[1]

    def raw(obj_id):
        for i in range(len(source)):
            logits = tracker.logits(i, obj_id)
            if logits is None:
                yield i, np.zeros((h, w), np.float32)
            else:
                yield i, soft_matte(logits, plate(i) if guided else None)

    for obj_id in objects:
        stream = raw(obj_id)
        if obj_id in cleanup:
            stream = cleanup[obj_id].run(stream)
        per_object_streams[obj_id] = stream
    for i in range(len(source)):
        mattes = {}
        for obj_id, name in objects.items():
            index, alpha = next(per_object_streams[obj_id])
            assert index == i
            mattes[name] = alpha
        yield i, source.frame_numbers[i], mattes, stored(i) if stored_plate else plate(i)


def export(tracker, objects: dict[int, str], writer, *, guided: bool = True,
           cleanup: dict[int, Cleanup] | None = None, progress: Callable[[int, int], None] | None = None) -> int:
    """Write every frame's mattes through `writer`; returns the number of frames written."""
    total = len(tracker.source)
    done = 0
    stored_plate = getattr(writer, "wants_stored_plate", False)
    try:
        for _, number, mattes, plate in mattes_of(tracker, objects, guided=guided, cleanup=cleanup,
                                                  stored_plate=stored_plate):
            writer.write(number, mattes, plate)
            done += 1
            if progress is not None:
                progress(done, total)
        writer.close()
    except BaseException:  # (Ctrl-C, a full disk: unfinished videos are removed, finished images stay)
        writer.abort()
        raise
    return done


def writer_for(fmt: str, out: Path, source):
    """The MatteWriter for a FORMATS name, writing into `out` at the source's pixel aspect
    and frame rate."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown matte format {fmt!r}; choose one of {', '.join(FORMATS)}")
    kind, codec = FORMATS[fmt]
    aspect = getattr(source, "pixel_aspect", 1.0)
    rate = getattr(source, "rate", None) or 24
    if kind == "sequence":
        return writers.AlphaSequenceWriter(out, fmt=codec, pixel_aspect=aspect)
    if kind == "layered":
        return writers.LayeredExrWriter(out, pixel_aspect=aspect)
    if kind == "premult":
        return writers.PremultipliedWriter(out, fmt=codec, rate=rate, pixel_aspect=aspect,
                                           footage_timecode=footage_timecode(source))
    return _VideoWriters(out, codec, source)


def footage_timecode(source) -> tuple[int, str] | None:
    """(the footage's first frame number, its timecode) where the footage has one."""
    timecode = getattr(source, "start_timecode", None)
    return (source.frame_numbers[0], timecode) if timecode else None


def check_export(fmt: str, source, names: list[str]) -> None:
    """ValueError for an export that would fail once it writes (checked before a long track):
    objects whose names become the same file names, FFV1 for non-square pixels."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown matte format {fmt!r}; choose one of {', '.join(FORMATS)}")
    writers.safe_names(names, file_names=FORMATS[fmt][0] != "layered")
    aspect = getattr(source, "pixel_aspect", 1.0)
    if FORMATS[fmt] == ("video", "ffv1") and abs(aspect - 1.0) > 1e-6:
        raise ValueError(f"FFV1 video cannot record the footage's pixel aspect {aspect:g}: export ProRes "
                         "(format prores) or an image sequence")


def matte_files(fmt: str, out: Path, name: str) -> str:
    """Where `writer_for(fmt, out, ...)` puts an object's mattes: a path with #### for the
    frame number, or the video file."""
    safe = writers.safe_name(name)
    kind, codec = FORMATS[fmt]
    if kind == "video":
        return str(out / f"{safe}.{'mov' if codec == 'prores4444' else 'mkv'}")
    if kind == "layered":
        return str(out / "mattes.####.exr")
    ext = {"png16": "png", "tiff16": "tif", "exr": "exr"}.get(fmt)
    if kind == "premult":
        return str(out / f"{safe}_premult.mov") if codec == "prores4444" else \
            str(out / f"{safe}_premult" / f"{safe}_premult.####.exr")
    return str(out / safe / f"{safe}.####.{ext}")


class _VideoWriters:
    """One alpha video per object, behind the MatteWriter interface."""

    def __init__(self, out: Path, codec: str, source):
        self._out, self._codec, self._source = out, codec, source
        self._writers: dict[str, writers.AlphaVideoWriter] = {}

    def _new(self, name: str) -> writers.AlphaVideoWriter:
        return writers.AlphaVideoWriter(
            self._out / f"{writers.safe_name(name)}.{'mov' if self._codec == 'prores4444' else 'mkv'}",
            rate=getattr(self._source, "rate", None) or 24, size=self._source.size, codec=self._codec,
            pixel_aspect=getattr(self._source, "pixel_aspect", 1.0), object_name=name,
            footage_timecode=footage_timecode(self._source))

    def write(self, frame_number, mattes, plate=None):
        for name, alpha in mattes.items():
            if name not in self._writers:
                self._writers[name] = self._new(name)
            self._writers[name].write(frame_number, {name: alpha})
        return []

    def close(self):
        try:
            for w in self._writers.values():
                w.close()
        except BaseException:
            self.abort()  # the videos not finished yet are removed; finished ones stay
            raise

    def abort(self):
        for w in self._writers.values():
            w.abort()


def write_shapes(tracker, objects: dict[int, str], out: Path, *, key_tolerance: float | None = None,
                 cleanup: dict[int, Cleanup] | None = None) -> dict[str, Path]:
    """Each object's outline as animated splines, `out/<object>.shapes.json`; returns the files."""
    files = {}
    for obj_id, name in objects.items():
        per_frame = ((number, mattes[name])
                     for _, number, mattes, _ in mattes_of(tracker, {obj_id: name}, cleanup=cleanup))
        shapes = shapes_from_mattes(per_frame, key_tolerance=key_tolerance or None)
        files[name] = write_shapes_json(out / f"{writers.safe_name(name)}.shapes.json", shapes, name)
    return files
