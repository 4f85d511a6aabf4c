"""A Blender mask the artist drew, as a mask prompt: rasterised at one frame to a plate-sized
8-bit PNG (255 = object), the form the service reads.

Rasterised here rather than by the compositor so that the scene is left alone: each spline's
Bezier curve is sampled into a polygon and filled by pixel centres (pixel (i, j) is inside when
(i + 0.5, j + 0.5) is). A layer with "fill holes" fills even-odd (overlaps cut holes); otherwise
its splines add up. Layers combine by their blend mode: Subtract removes, the others add.
Feathering is ignored: the prompt is the shape itself.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import coordinates, png

SAMPLES_PER_SEGMENT = 16


def spline_polygon(spline: bpy.types.MaskSpline, width: int, height: int) -> np.ndarray:
    """(N, 2) polygon in plate pixels of a spline's current (evaluated) shape."""
    pts = [(p.co, p.handle_left, p.handle_right) for p in spline.points]
    to_plate = [[coordinates.mask_to_plate(v[0], v[1], width, height) for v in p] for p in pts]
    co = np.array([p[0] for p in to_plate])
    left = np.array([p[1] for p in to_plate])
    right = np.array([p[2] for p in to_plate])
    count = len(co) if spline.use_cyclic else len(co) - 1
    t = (np.arange(SAMPLES_PER_SEGMENT) / SAMPLES_PER_SEGMENT)[:, None]
    segments = []
    for i in range(count):
        j = (i + 1) % len(co)
        p0, p1, p2, p3 = co[i], right[i], left[j], co[j]
        segments.append((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3)
    return np.concatenate(segments) if segments else co


def crossings(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxW int: how many polygon edges cross each row's ray left of each pixel centre (odd = inside)."""
    counts = np.zeros((height, width + 1), np.int32)
    a, b = polygon, np.roll(polygon, -1, axis=0)
    ys = np.arange(height) + 0.5
    for (x0, y0), (x1, y1) in zip(a, b, strict=True):
        if y0 == y1:
            continue
        lo, hi = min(y0, y1), max(y0, y1)
        rows = np.nonzero((ys >= lo) & (ys < hi))[0]
        if not len(rows):
            continue
        xs = x0 + (ys[rows] - y0) * (x1 - x0) / (y1 - y0)
        cols = np.clip(np.ceil(xs - 0.5), 0, width).astype(int)  # first pixel centre right of the crossing
        np.add.at(counts, (rows, cols), 1)
    return np.cumsum(counts, axis=1)[:, :width]


def rasterize_layer(layer: bpy.types.MaskLayer, width: int, height: int) -> np.ndarray:
    inside = np.zeros((height, width), bool)
    parity = np.zeros((height, width), np.int32)
    for spline in layer.splines:
        if len(spline.points) < 2 or not spline.use_fill:
            continue
        hits = crossings(spline_polygon(spline, width, height), height, width)
        if layer.use_fill_holes:
            parity += hits
        else:
            inside |= (hits % 2) == 1
    if layer.use_fill_holes:
        inside |= (parity % 2) == 1
    return ~inside if layer.invert else inside


def rasterize(mask: bpy.types.Mask, width: int, height: int) -> np.ndarray:
    """HxW bool of the mask as it is on the scene's current frame."""
    result = np.zeros((height, width), bool)
    for layer in reversed(list(mask.layers)):  # the bottom layer first, as Blender stacks them
        if layer.hide_render or layer.alpha <= 0:
            continue
        region = rasterize_layer(layer, width, height)
        result = result & ~region if layer.blend == "SUBTRACT" else result | region
    return result


def write_prompt(mask: bpy.types.Mask, scene: bpy.types.Scene, frame: int, width: int, height: int,
                 path: str) -> tuple[str, int]:
    """The mask at scene frame `frame` as a prompt PNG; returns (path, pixels inside)."""
    if scene.frame_current != frame:
        scene.frame_set(frame)
    inside = rasterize(mask, width, height)
    png.write_grey(path, inside.astype(np.uint8) * 255)
    return path, int(inside.sum())
