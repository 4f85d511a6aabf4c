"""Vector roto shapes: an object's per-frame mattes as animated closed Bezier splines.

Host adapters turn the JSON written here into Blender masks or Nuke/Fusion roto shapes,
which artists then edit. What makes the shapes editable and animatable:

- One spline per connected part (8-connected, the largest `max_parts` above `min_area`)
  and one per hole, a hole marked `hole` with the id of the outer spline it cuts.
- A spline is a *track* over the whole shot: it keeps one point count, a consistent
  orientation and a start point that follows the previous frame, so a host interpolating
  between keys morphs the shape instead of scrambling it.
- A frame where a track's part is gone (the object absent, or merged into another part)
  is an `absent` key, never a collapsed shape.

Coordinates are continuous plate pixels: origin top-left, x right, y down; pixel (i, j)
covers [i, i+1) x [j, j+1), so a matte edge at pixel column 10 lies at x = 10. Outlines
are traced on pixel edges (`_edge_grid`), then run midway between inside and outside pixel
centres (`_outline`), and `rasterize` counts a pixel as inside when its centre
(i + 0.5, j + 0.5) is: the proof that a spline is its matte is that it rasterises back to it.

Orientation: outer splines run clockwise as seen on screen (y down), holes
counter-clockwise; that is a positive shoelace area for outers in these coordinates.
A host with y up (Blender) sees both reversed, consistently.

Merges and splits: parts are matched frame to frame greedily by the IoU of a part with
each track's last-seen region. When two parts merge, the track with the larger IoU follows
the merged part and the other becomes absent; if the parts separate again where that
track was last seen, it resumes. A piece that matches no track starts a new one.

The file (schema "sam2roto.shapes", version 1):
    {"schema": "sam2roto.shapes", "version": 1, "object": name, "width": W, "height": H,
     "frame_range": [first, last], "coordinates": COORDINATES,
     "splines": [{"id": 0, "hole": false, "parent": null, "points": K, "first_frame": f,
                  "keys": {"1001": {"points": [[x, y, in_x, in_y, out_x, out_y], ...K]},
                           "1002": {"absent": true}}}]}
A frame with no key blends the keys around it linearly (points and handles); an absent key
holds until the next key; before first_frame a spline does not exist.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..atomic import write_text_atomically

SCHEMA = "sam2roto.shapes"
VERSION = 1
COORDINATES = "plate pixels; origin top-left; x right, y down; pixel (i, j) covers [i, i+1) x [j, j+1)"

DEFAULT_SPACING = 4.0  # pixels of contour between spline points
MIN_POINTS, MAX_POINTS = 12, 400
MIN_AREA_PIXELS = 16  # default min_area: at least this many pixels ...
MIN_AREA_FRACTION = 0.0002  # ... or this fraction of the plate (415 px at 1920x1080)
CORNER_DEGREES = 60.0  # a turn this sharp is a corner: it gets a point and straight handles
CORNER_WINDOW = 2.0  # pixels of contour each side over which a turn is measured
ALIGN_SUBSTEPS = 4  # start-point candidates per point spacing when following the last frame


class ShapesFileError(ValueError):
    """A shapes file that cannot be used: not JSON, another schema or version, or malformed."""


# ---------------------------------------------------------------------------------------
# Public data


@dataclass
class Spline:
    """One animated closed Bezier spline.

    keys: frame -> (points, 6) array of [x, y, in_x, in_y, out_x, out_y] per point, or
    None where the spline is absent. Frames between keys interpolate linearly (`at`).
    """

    id: int
    hole: bool
    parent: int | None
    points: int
    first_frame: int
    keys: dict[int, np.ndarray | None] = field(default_factory=dict)

    def at(self, frame: int) -> np.ndarray | None:
        """The spline on `frame`: its key, or the linear blend of the keys around it.

        Absent before the first key and from an absent key until the next key; after the
        last key, the last key holds (as hosts do).
        """
        frames = sorted(self.keys)
        if not frames or frame < frames[0]:
            return None
        if frame in self.keys:
            return self.keys[frame]
        before = max(f for f in frames if f < frame)
        after = [f for f in frames if f > frame]
        start = self.keys[before]
        if start is None or not after or self.keys[after[0]] is None:
            return start
        w = (frame - before) / (after[0] - before)
        return start + w * (self.keys[after[0]] - start)


@dataclass
class ObjectShapes:
    """The vector shapes of one object over a shot."""

    width: int
    height: int
    first_frame: int
    last_frame: int
    splines: list[Spline]
    name: str | None = None

    def to_json_dict(self, object_name: str | None = None) -> dict:
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "object": object_name if object_name is not None else self.name,
            "width": self.width,
            "height": self.height,
            "frame_range": [self.first_frame, self.last_frame],
            "coordinates": COORDINATES,
            "splines": [_spline_to_json(s) for s in self.splines],
        }

    @classmethod
    def from_json_dict(cls, data: dict) -> ObjectShapes:
        """The shapes in a dict from `to_json_dict`; ValueError saying what is wrong otherwise."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a sam2roto shapes file (schema {found!r}, expected {SCHEMA!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"shapes version {data.get('version')!r} is not supported (this sam2roto reads {VERSION})")
        try:
            first, last = (int(f) for f in data["frame_range"])
            splines = [_spline_from_json(s) for s in data["splines"]]
            outers = {s.id for s in splines if not s.hole}
            for s in splines:
                if s.hole and s.parent not in outers:
                    raise ValueError(f"hole spline {s.id} has parent {s.parent}, which is not an outer spline")
            return cls(int(data["width"]), int(data["height"]), first, last, splines, data.get("object"))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed shapes: {type(e).__name__}: {e}") from e


def _spline_to_json(s: Spline) -> dict:
    keys = {}
    for frame, key in sorted(s.keys.items()):
        # a thousandth of a pixel is far below what anyone sees, and keeps files small
        keys[str(frame)] = {"absent": True} if key is None else {"points": np.round(key, 3).tolist()}
    return {"id": s.id, "hole": s.hole, "parent": s.parent, "points": s.points, "first_frame": s.first_frame,
            "keys": keys}


def _spline_from_json(d: dict) -> Spline:
    count = int(d["points"])
    keys: dict[int, np.ndarray | None] = {}
    for frame, key in d["keys"].items():
        if key.get("absent") is True:
            keys[int(frame)] = None
            continue
        points = np.asarray(key["points"], dtype=np.float64)
        if points.shape != (count, 6):
            raise ValueError(f"spline {d['id']} frame {frame}: {points.shape} points, expected ({count}, 6)")
        keys[int(frame)] = points
    parent = d["parent"]
    return Spline(int(d["id"]), bool(d["hole"]), None if parent is None else int(parent), count,
                  int(d["first_frame"]), keys)


def write_shapes_json(path: str | os.PathLike, shapes: ObjectShapes, object_name: str | None = None) -> Path:
    """Write the shapes atomically: a reader sees the old file or the new one, never a half."""
    path = Path(path)
    return write_text_atomically(path, json.dumps(shapes.to_json_dict(object_name), separators=(",", ":")))


def read_shapes_json(path: str | os.PathLike) -> ObjectShapes:
    """Read a shapes file; ShapesFileError naming the file for anything but version 1 shapes."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShapesFileError(f"{path}: not a JSON shapes file ({e})") from e
    try:
        return ObjectShapes.from_json_dict(data)
    except ValueError as e:
        raise ShapesFileError(f"{path}: {e}") from e


# ---------------------------------------------------------------------------------------
# Mattes to shapes


def shapes_from_mattes(
    mattes: Iterable[tuple[int, np.ndarray]],
    *,
    threshold: float = 0.5,
    max_parts: int = 4,
    min_area: float | None = None,
    spacing: float | None = None,
    key_tolerance: float | None = None,
) -> ObjectShapes:
    """Animated splines for one object from (frame_number, matte) pairs in frame order.

    matte: HxW, float in [0, 1] or bool, the same size every frame; a pixel is in the
    object where matte > threshold. min_area (pixels) drops smaller parts and holes;
    default max(16, 0.02% of the plate). spacing: pixels of contour per spline point
    (default 4), from a track's longest contour, clamped to [12, 400] points.
    key_tolerance (pixels): keep a key only where some point or handle strays more than
    this from the blend of the kept keys around it; None keeps every frame.
    """
    if spacing is not None and not spacing > 0:
        raise ValueError(f"spacing must be a positive number of pixels, got {spacing}")
    tracker: _Tracker | None = None
    for frame, matte in mattes:
        binary = np.asarray(matte) > threshold
        if binary.ndim != 2:
            raise ValueError(f"frame {frame}: a matte must be HxW, got shape {binary.shape}")
        if tracker is None:
            height, width = binary.shape
            area = min_area if min_area is not None else max(MIN_AREA_PIXELS, MIN_AREA_FRACTION * width * height)
            tracker = _Tracker(height, width)
        elif binary.shape != (tracker.height, tracker.width):
            raise ValueError(f"frame {frame}: matte is {binary.shape}, the first was {(tracker.height, tracker.width)}")
        if tracker.frames and frame <= tracker.frames[-1]:
            raise ValueError(f"frame {frame} comes after frame {tracker.frames[-1]}: frames must increase")
        tracker.add(int(frame), _trace_parts(binary, area, max_parts))
    if tracker is None:
        raise ValueError("no mattes given")

    splines = [_build_spline(t, tracker.frames, spacing or DEFAULT_SPACING) for t in tracker.tracks]
    if key_tolerance is not None:
        for s in splines:
            s.keys = _reduce_keys(s.keys, key_tolerance)
    return ObjectShapes(tracker.width, tracker.height, tracker.frames[0], tracker.frames[-1], splines)


@dataclass
class _Part:
    outline: np.ndarray  # (N, 2) closed polygon in plate coordinates (see `_outline`), clockwise
    holes: list[np.ndarray]  # the same, counter-clockwise


def _edge_grid(binary: np.ndarray) -> np.ndarray:
    """The matte sampled at every pixel corner, edge midpoint and centre: a (2H+1, 2W+1) grid
    where sample (X, Y) sits at plate point (X/2, Y/2).

    A sample on an edge or corner is set when any pixel touching it is, so the set samples
    are exactly the closed pixel squares, and OpenCV's contours (which run through the
    centres of boundary samples) land on the pixel edges rather than half a pixel inside.
    """

    def along_rows(m: np.ndarray) -> np.ndarray:
        out = np.zeros((2 * m.shape[0] + 1, m.shape[1]), np.uint8)
        padded = np.zeros((m.shape[0] + 2, m.shape[1]), np.uint8)
        padded[1:-1] = m
        out[1::2] = m
        out[0::2] = padded[:-1] | padded[1:]  # the edge between pixel rows k-1 and k
        return out

    return along_rows(along_rows(binary.astype(np.uint8)).T).T


def _trace_parts(binary: np.ndarray, min_area: float, max_parts: int) -> list[_Part]:
    """The largest `max_parts` 8-connected parts with at least `min_area` pixels, largest first."""
    grid = np.pad(_edge_grid(binary), 1)  # a clear border, so parts at the plate edge close there
    contours, hierarchy = cv2.findContours(grid, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE, offset=(-1, -1))
    if not contours:
        return []
    polygons = [_outline(c) for c in contours]
    parts = []
    for i, (_, _, child, parent) in enumerate(hierarchy[0]):
        if parent != -1:
            continue
        holes = []
        while child != -1:  # RETR_CCOMP: an outer's children are its holes
            holes.append(polygons[child])
            child = hierarchy[0][child][0]
        area = abs(_signed_area(polygons[i])) - sum(abs(_signed_area(h)) for h in holes)
        holes = [_oriented(h, clockwise=False) for h in holes if abs(_signed_area(h)) >= min_area]
        parts.append((area, _Part(_oriented(polygons[i], clockwise=True), holes)))
    parts.sort(key=lambda p: -p[0])
    # the largest part stays down to MIN_AREA_PIXELS (a distant object is still the object; a
    # pixel or two where it has gone is not); the others from min_area on (specks)
    return [p for k, (area, p) in enumerate(parts[:max_parts])
            if area >= min_area or (k == 0 and area >= min(min_area, MIN_AREA_PIXELS))]


def _outline(contour: np.ndarray) -> np.ndarray:
    """Plate-coordinate polygon of an OpenCV contour traced on the `_edge_grid`.

    The traced contour runs along pixel edges through pixel corners, a staircase on every
    slope and curve. Keeping only the edge midpoints (samples with an odd coordinate) cuts
    each stair corner at 45 degrees, like marching squares: the outline then lies midway
    between the inside and outside pixel centres, a smooth path that a few spline points
    follow closely. Real corners (see `_restore_corners`) are put back.
    """
    points = contour.reshape(-1, 2)
    return _restore_corners(points[(points % 2).any(axis=1)].astype(np.float64) / 2.0)


def _restore_corners(poly: np.ndarray) -> np.ndarray:
    """Put back the pixel corner cut by a 45-degree step between a vertical and a horizontal
    edge that are each straight for two pixels or more (a rectangle's corner, an L's inside
    corner). Shorter stairs keep their cut: they are a slope or a curve, not a corner."""
    seg = np.roll(poly, -1, axis=0) - poly  # segment i runs from point i to point i + 1
    diagonal = (np.abs(seg) == 0.5).all(axis=1)
    unit_step = (seg == 0).any(axis=1) & (np.abs(seg).sum(axis=1) == 1)  # one pixel along x or y
    run = unit_step & (seg == np.roll(seg, -1, axis=0)).all(axis=1)  # segments i and i + 1 the same step
    vertical = seg[:, 0] == 0
    cut = np.flatnonzero(
        diagonal
        & np.roll(run, 2)  # segments i - 2 and i - 1: a straight edge before the cut
        & np.roll(run, -1)  # segments i + 1 and i + 2: a straight edge after it
        & (np.roll(vertical, 1) != np.roll(vertical, -1))  # one vertical, the other horizontal
    )
    after = np.roll(poly, -1, axis=0)[cut]
    # the corner is where the edge through point i meets the edge through point i + 1
    x_then_y = np.stack([poly[cut, 0], after[:, 1]], axis=1)  # a vertical edge, then a horizontal one
    y_then_x = np.stack([after[:, 0], poly[cut, 1]], axis=1)
    corner = np.where(vertical[cut - 1, None], x_then_y, y_then_x)
    return np.insert(poly, cut + 1, corner, axis=0)


def _signed_area(poly: np.ndarray) -> float:
    """Shoelace area; positive for clockwise on screen (y down)."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _oriented(poly: np.ndarray, clockwise: bool) -> np.ndarray:
    if (_signed_area(poly) > 0) == clockwise:
        return poly
    return np.concatenate([poly[:1], poly[:0:-1]])  # reversed, keeping the start point


# ---------------------------------------------------------------------------------------
# Tracking parts and holes from frame to frame


@dataclass
class _Region:
    """A filled outline: its bounding box's corner and the pixels inside the box. (Whole-plate
    masks, one per track, grew the export by megabytes a frame for a small moving object.)"""

    x0: int
    y0: int
    mask: np.ndarray  # bool, the box's height x width
    area: int


def _region(outline: np.ndarray, height: int, width: int) -> _Region:
    (x0, y0), (x1, y1) = np.floor(outline.min(axis=0)), np.ceil(outline.max(axis=0)) + 1
    x0, x1 = (int(np.clip(v, 0, width)) for v in (x0, x1))
    y0, y1 = (int(np.clip(v, 0, height)) for v in (y0, y1))
    mask = _fill_polygon(outline - (x0, y0), y1 - y0, x1 - x0)
    return _Region(x0, y0, mask, int(np.count_nonzero(mask)))


@dataclass
class _Track:
    id: int
    hole: bool
    parent: int | None
    first_frame: int
    # visible frames only, in half pixels (outlines run on pixel edges and their midpoints):
    # a quarter of float64's memory for a shot's worth of outlines
    half_pixels: dict[int, np.ndarray] = field(default_factory=dict)
    longest: float = 0.0  # the longest outline's perimeter
    last_region: _Region | None = None  # where last seen, for matching

    def keep(self, frame: int, outline: np.ndarray) -> None:
        dtype = np.int16 if np.abs(outline).max(initial=0) < 16000 else np.int32
        self.half_pixels[frame] = np.rint(outline * 2).astype(dtype)
        self.longest = max(self.longest, _perimeter(outline))

    def outline(self, frame: int) -> np.ndarray | None:
        got = self.half_pixels.get(frame)
        return None if got is None else got / 2.0


class _Tracker:
    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.frames: list[int] = []
        self.tracks: list[_Track] = []

    def add(self, frame: int, parts: list[_Part]) -> None:
        self.frames.append(frame)
        outers = [t for t in self.tracks if not t.hole]
        for part, track in zip(parts, self._follow(frame, outers, [p.outline for p in parts], parent=None)):
            holes = [t for t in self.tracks if t.hole and t.parent == track.id]
            self._follow(frame, holes, part.holes, parent=track.id)

    def _follow(self, frame: int, tracks: list[_Track], outlines: list[np.ndarray], parent: int | None):
        """The track of each outline: the one whose last-seen region it overlaps best, else a new one.

        Greedy by IoU, best pairs first; tracks not seen on the previous frame take part
        too, so a part that comes back where it was last seen continues its track.
        """
        regions = [_region(o, self.height, self.width) for o in outlines]
        pairs = [(_iou(region, t.last_region), i, k) for i, region in enumerate(regions) for k, t in enumerate(tracks)]
        chosen: dict[int, _Track] = {}
        for iou, i, k in sorted(pairs, key=lambda p: -p[0]):
            if iou > 0 and i not in chosen and all(tracks[k] is not t for t in chosen.values()):
                chosen[i] = tracks[k]
        result = []
        for i, outline in enumerate(outlines):
            track = chosen.get(i)
            if track is None:
                track = _Track(len(self.tracks), parent is not None, parent, frame)
                self.tracks.append(track)
            track.keep(frame, outline)
            track.last_region = regions[i]
            result.append(track)
        return result


def _iou(a: _Region, b: _Region) -> float:
    x0, x1 = max(a.x0, b.x0), min(a.x0 + a.mask.shape[1], b.x0 + b.mask.shape[1])
    y0, y1 = max(a.y0, b.y0), min(a.y0 + a.mask.shape[0], b.y0 + b.mask.shape[0])
    inter = 0
    if x1 > x0 and y1 > y0:  # (boxes apart share no pixel)
        inter = np.count_nonzero(a.mask[y0 - a.y0:y1 - a.y0, x0 - a.x0:x1 - a.x0]
                                 & b.mask[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0])
    return inter / max(1, a.area + b.area - inter)


# ---------------------------------------------------------------------------------------
# Tracks to splines: one point count, consistent start, Bezier handles


def _build_spline(track: _Track, frames: list[int], spacing: float) -> Spline:
    count = int(np.clip(round(track.longest / spacing), MIN_POINTS, MAX_POINTS))
    keys: dict[int, np.ndarray | None] = {}
    previous = None  # the last visible frame's points, which the next frame's start point follows
    for frame in frames:
        if frame < track.first_frame:
            continue
        outline = track.outline(frame)
        if outline is None:
            keys[frame] = None
            continue
        previous = _resample(outline, count, previous)
        keys[frame] = _with_handles(previous)
    return Spline(track.id, track.hole, track.parent, count, track.first_frame, keys)


def _perimeter(poly: np.ndarray) -> float:
    return float(np.hypot(*(np.roll(poly, -1, axis=0) - poly).T).sum())


def _arc(poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The polygon closed (first point repeated) and the arc length at each of its points."""
    closed = np.concatenate([poly, poly[:1]])
    return closed, np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])


def _point_at(closed: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points at arc lengths t (any real: the contour is closed, so t wraps)."""
    t = np.mod(t, s[-1])
    return np.stack([np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])], axis=1)


def _resample(outline: np.ndarray, count: int, previous: np.ndarray | None) -> np.ndarray:
    """`count` points evenly spaced along the outline, starting where they best follow
    `previous`, with the nearest point moved onto each sharp corner so corners stay sharp."""
    closed, s = _arc(outline)
    step = s[-1] / count
    corners = _corners(closed, s)
    if previous is not None:
        start = _best_start(closed, s, count, previous)
    else:  # a new track starts at a corner, so the points along straight sides come out even
        start = corners[0] if corners else 0.0
    t = start + step * np.arange(count)
    taken = set()
    for corner in corners:  # sharpest first: where two want one point, the sharper wins
        i = int(round(((corner - start) % s[-1]) / step)) % count
        if i in taken:
            continue
        taken.add(i)
        t[i] += (corner - t[i] + s[-1] / 2) % s[-1] - s[-1] / 2  # the corner's arc length, on t[i]'s lap
    return _point_at(closed, s, t)


def _best_start(closed: np.ndarray, s: np.ndarray, count: int, previous: np.ndarray) -> float:
    """The start arc length whose points are closest to `previous` (summed squared distance),
    both centred first so that fast motion does not pull the start round the contour."""
    n = count * ALIGN_SUBSTEPS  # candidate starts a fraction of a spacing apart, for smooth morphs
    fine = _point_at(closed, s, np.arange(n) * s[-1] / n)
    fine -= fine.mean(axis=0)
    target = previous - previous.mean(axis=0)
    index = (np.arange(n)[:, None] + ALIGN_SUBSTEPS * np.arange(count)[None, :]) % n
    cost = ((fine[index] - target[None]) ** 2).sum(axis=(1, 2))
    return float(np.argmin(cost)) * s[-1] / n


def _corners(closed: np.ndarray, s: np.ndarray) -> list[float]:
    """Arc lengths of the outline's sharp corners, sharpest first, at least a window apart.

    The turn is measured between points CORNER_WINDOW before and after each vertex, so the
    single-pixel steps of a staircase (a curve's or a slope's) do not count as corners.
    """
    vertex, at = closed[:-1], s[:-1]
    before, after = _point_at(closed, s, at - CORNER_WINDOW), _point_at(closed, s, at + CORNER_WINDOW)
    turn = _turn_degrees(vertex - before, after - vertex)
    found: list[float] = []
    for i in np.argsort(-turn):
        if turn[i] < CORNER_DEGREES:
            break
        if all(abs((at[i] - c + s[-1] / 2) % s[-1] - s[-1] / 2) > CORNER_WINDOW for c in found):
            found.append(float(at[i]))
    return found


def _turn_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between direction vectors a and b, row by row."""
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return np.degrees(np.arctan2(np.abs(cross), (a * b).sum(axis=1)))


def _with_handles(p: np.ndarray) -> np.ndarray:
    """[x, y, in_x, in_y, out_x, out_y] per point: Catmull-Rom handles (tangent from the
    neighbours), except at sharp corners, whose handles point along the two sides so the
    corner stays a corner."""
    before, after = np.roll(p, 1, axis=0), np.roll(p, -1, axis=0)
    tangent = (after - before) / 6.0
    h_in, h_out = p - tangent, p + tangent
    sharp = _turn_degrees(p - before, after - p) >= CORNER_DEGREES
    h_in[sharp] = p[sharp] + (before[sharp] - p[sharp]) / 3.0
    h_out[sharp] = p[sharp] + (after[sharp] - p[sharp]) / 3.0
    return np.concatenate([p, h_in, h_out], axis=1)


def _reduce_keys(keys: dict[int, np.ndarray | None], tolerance: float) -> dict[int, np.ndarray | None]:
    """Keep absent keys and the ends of each visible run; inside a run, keep a key only
    where some point or handle strays more than `tolerance` pixels from the linear blend of
    the kept keys around it (Douglas-Peucker over time)."""
    frames = sorted(keys)
    keep = {f for f in frames if keys[f] is None}
    run: list[int] = []
    for f in frames + [None]:  # None closes the last run
        if f is not None and keys[f] is not None:
            run.append(f)
            continue
        if run:
            keep.update(_keep_in_run(run, keys, tolerance))
        run = []
    return {f: keys[f] for f in frames if f in keep}


def _keep_in_run(run: list[int], keys: dict[int, np.ndarray], tolerance: float) -> set[int]:
    keep = {run[0], run[-1]}
    spans = [(0, len(run) - 1)]
    while spans:
        lo, hi = spans.pop()
        if hi - lo < 2:
            continue
        a, b = keys[run[lo]], keys[run[hi]]
        inner = np.arange(lo + 1, hi)
        w = (np.array([run[i] for i in inner]) - run[lo]) / (run[hi] - run[lo])
        actual = np.stack([keys[run[i]] for i in inner])
        blend = a[None] + w[:, None, None] * (b - a)[None]
        # the farthest of each key's points and handles (three x, y pairs per row)
        stray = np.hypot((actual - blend)[..., 0::2], (actual - blend)[..., 1::2]).max(axis=(1, 2))
        worst = int(np.argmax(stray))
        if stray[worst] > tolerance:
            mid = int(inner[worst])
            keep.add(run[mid])
            spans += [(lo, mid), (mid, hi)]
    return keep


# ---------------------------------------------------------------------------------------
# Rasterising: the check that the splines are the matte


def rasterize(
    shapes: ObjectShapes,
    frame_number: int,
    width: int | None = None,
    height: int | None = None,
    samples_per_segment: int = 8,
) -> np.ndarray:
    """HxW bool: the pixels whose centres the frame's splines enclose (outers minus their
    holes). Frames between keys use the interpolated keys, as a host would."""
    width = shapes.width if width is None else width
    height = shapes.height if height is None else height
    out = np.zeros((height, width), bool)
    visible = {s.id: s.at(frame_number) for s in shapes.splines}
    for s in shapes.splines:
        if s.hole or visible[s.id] is None:
            continue
        region = _fill_polygon(bezier_polygon(visible[s.id], samples_per_segment), height, width)
        for h in shapes.splines:
            if h.hole and h.parent == s.id and visible[h.id] is not None:
                region &= ~_fill_polygon(bezier_polygon(visible[h.id], samples_per_segment), height, width)
        out |= region
    return out


def bezier_polygon(key: np.ndarray, samples_per_segment: int = 8) -> np.ndarray:
    """The closed spline of one key ((points, 6) rows of [x, y, in_x, in_y, out_x, out_y])
    as a polygon, `samples_per_segment` points per cubic segment."""
    p, h_in, h_out = key[:, 0:2], key[:, 2:4], key[:, 4:6]
    controls = np.stack([p, h_out, np.roll(h_in, -1, axis=0), np.roll(p, -1, axis=0)], axis=1)  # (K, 4, 2)
    t = np.arange(samples_per_segment)[:, None] / samples_per_segment
    basis = np.concatenate([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3], axis=1)  # (n, 4)
    return np.einsum("nc,kcd->knd", basis, controls).reshape(-1, 2)


def _fill_polygon(poly: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxW bool: pixels whose centre lies inside the closed polygon (even-odd rule).

    A scanline fill at pixel centres, exact in plate coordinates: OpenCV's fillPoly counts
    pixels on the outline as inside, which would grow every shape by up to a pixel.
    """
    a, b = poly, np.roll(poly, -1, axis=0)
    lo, hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    # rows whose centre y = row + 0.5 is in [lo, hi): half-open, so a vertex on a row counts once
    first = np.clip(np.ceil(lo - 0.5), 0, height).astype(np.int64)
    stop = np.clip(np.ceil(hi - 0.5), 0, height).astype(np.int64)
    counts = np.maximum(stop - first, 0)
    edge = np.repeat(np.arange(len(a)), counts)
    row = np.repeat(first, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    ya, yb = a[edge, 1], b[edge, 1]
    x = a[edge, 0] + (row + 0.5 - ya) * (b[edge, 0] - a[edge, 0]) / (yb - ya)
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    # a row's crossings pair up in order: inside from the 1st to the 2nd, the 3rd to the 4th...
    # pixel column j is inside a span [xa, xb) when its centre j + 0.5 is
    r = row[0::2]
    start = np.clip(np.ceil(x[0::2] - 0.5), 0, width).astype(np.int64)
    end = np.clip(np.ceil(x[1::2] - 0.5), 0, width).astype(np.int64)
    size = height * (width + 1)
    diff = np.bincount(r * (width + 1) + start, minlength=size) - np.bincount(r * (width + 1) + end, minlength=size)
    return np.cumsum(diff.reshape(height, width + 1), axis=1)[:, :width] > 0
