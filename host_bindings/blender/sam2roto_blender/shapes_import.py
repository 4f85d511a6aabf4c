"""The core's vector shapes (schema sam2roto.shapes, version 1; see plugin/PROTOCOL.md) as an
animated Blender Mask: one mask layer per object, one spline per part or hole, the points and
their Bezier handles keyed on the frames the file keys, editable like hand-drawn roto.

How the file's rules become F-curves:
- between two keys the file blends linearly: those keys get LINEAR interpolation;
- a spline is absent before its first frame and from an `absent` key to the next key: there it
  is keyed collapsed to a point (it covers nothing) with CONSTANT interpolation, and the key
  before an absent one is CONSTANT too, so the shape holds until it disappears;
- frames where the whole object is gone key the layer hidden (`hide`, `hide_render`).
Holes are splines of the same layer, cut out by the layer's "fill holes" (even-odd) filling.
"""

from __future__ import annotations

import json
import os

import bpy

from . import animation, coordinates, footage

SCHEMA, VERSION = "sam2roto.shapes", 1
_CHANNELS = (("co", 0), ("handle_left", 2), ("handle_right", 4))  # [x, y, in_x, in_y, out_x, out_y]


class ShapesError(ValueError):
    pass


def read_shapes(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ShapesError(f"Cannot read the shapes file {path}: {e}") from e
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or data.get("version") != VERSION:
        raise ShapesError(f"{path} is not a sam2roto shapes file of version {VERSION} "
                          f"(schema {data.get('schema') if isinstance(data, dict) else None!r}).")
    return data


def _spline_keys(spline: dict) -> list[tuple[int, list | None]]:
    """[(source frame, points or None for absent)] in frame order."""
    keys = []
    for frame, key in spline["keys"].items():
        keys.append((int(frame), None if key.get("absent") else key["points"]))
    return sorted(keys, key=lambda k: k[0])


def _to_mask_space(points: list, width: int, height: int) -> list[list[float]]:
    """[x, y, in_x, in_y, out_x, out_y] rows in plate pixels -> the same rows in mask space."""
    out = []
    for row in points:
        mapped = []
        for i in range(0, 6, 2):
            mapped.extend(coordinates.plate_to_mask(row[i], row[i + 1], width, height))
        out.append(mapped)
    return out


def _collapsed(points: list[list[float]]) -> list[list[float]]:
    """The spline shrunk to its centre: it encloses nothing, so it rasterises to nothing."""
    cx = sum(r[0] for r in points) / len(points)
    cy = sum(r[1] for r in points) / len(points)
    return [[cx, cy] * 3 for _ in points]


def _timeline(keys, count: int, first_frame: int, shot_first: int):
    """Scene-independent key list [(source frame, rows, interpolation)] with absent spans collapsed."""
    present = [rows for _, rows in keys if rows is not None]
    if not present:
        return []
    timeline, last_rows = [], present[0]
    if first_frame > shot_first:
        timeline.append((first_frame - 1, _collapsed(present[0]), animation.CONSTANT))
    for i, (frame, rows) in enumerate(keys):
        nxt = keys[i + 1][1] if i + 1 < len(keys) else None
        if rows is None:
            timeline.append((frame, _collapsed(last_rows), animation.CONSTANT))
            continue
        if len(rows) != count:
            raise ShapesError(f"spline key on frame {frame} has {len(rows)} points, not {count}")
        last_rows = rows
        timeline.append((frame, rows, animation.LINEAR if nxt is not None else animation.CONSTANT))
    return timeline


def _object_visible(splines: list[dict], frame: int) -> bool:
    """Whether any outer spline of the object is present on `frame` (the file's rules)."""
    for spline in splines:
        if spline.get("hole"):
            continue
        before = [rows for f, rows in _spline_keys(spline) if f <= frame]
        if before and before[-1] is not None:
            return True
    return False


def remove_layer(mask: bpy.types.Mask, name: str) -> None:
    """The layer `name` and its animation, gone (if it is there)."""
    old = mask.layers.get(name)
    if old is not None:
        mask.layers.remove(old)
    if mask.animation_data and mask.animation_data.action:
        prefix = f'layers["{bpy.utils.escape_identifier(name)}"]'
        animation.remove_fcurves(animation.fcurves_of(mask, "", 0), prefix)


def _new_layer(mask: bpy.types.Mask, name: str) -> bpy.types.MaskLayer:
    remove_layer(mask, name)
    layer = mask.layers.new(name=name)
    mask.layers.active = layer
    return layer


def _add_spline(layer: bpy.types.MaskLayer, rows: list[list[float]]) -> bpy.types.MaskSpline:
    spline = layer.splines.new()  # comes with one point
    spline.points.add(len(rows) - 1)
    spline.use_cyclic = True
    spline.use_fill = True
    for point, row in zip(spline.points, rows, strict=True):
        point.handle_type = "FREE"  # the file's handles exactly; artists may change the type
        point.co = row[0:2]
        point.handle_left = row[2:4]
        point.handle_right = row[4:6]
    return spline


def import_object(mask: bpy.types.Mask, clip: bpy.types.MovieClip, data: dict, name: str | None = None):
    """Replaces the layer `name` (default: the file's object) of `mask` with the file's shapes."""
    name = name or data.get("object") or "object"
    width, height = int(data["width"]), int(data["height"])
    shot_first, shot_last = (int(f) for f in data["frame_range"])
    layer = _new_layer(mask, name)
    layer_path = f'layers["{bpy.utils.escape_identifier(name)}"]'
    layer.use_fill_holes = any(s.get("hole") for s in data["splines"])
    scene_of = {}  # source frame -> scene frame

    def to_scene(source: int) -> float:
        if source not in scene_of:
            scene_of[source] = float(footage.scene_frame(clip, source))
        return scene_of[source]

    fcurves = None
    index = 0
    for spline in data["splines"]:
        keys = _spline_keys(spline)
        converted = [(f, None if rows is None else _to_mask_space(rows, width, height)) for f, rows in keys]
        timeline = _timeline(converted, int(spline["points"]), int(spline["first_frame"]), shot_first)
        if not timeline:
            continue  # a spline that is never present adds nothing
        first_rows = next(rows for _, rows, ipo in timeline if rows is not None)
        _add_spline(layer, first_rows)
        path = f"{layer_path}.splines[{index}].points"
        if fcurves is None:
            fcurves = animation.fcurves_of(mask, f"{path}[0].co", to_scene(timeline[0][0]))
        frames = [to_scene(f) for f, _, _ in timeline]
        interpolations = [ipo for _, _, ipo in timeline]
        for p in range(len(first_rows)):
            for prop, col in _CHANNELS:
                for axis in (0, 1):
                    values = [rows[p][col + axis] for _, rows, _ in timeline]
                    animation.fill_fcurve(fcurves, f"{path}[{p}].{prop}", axis, frames, values, interpolations)
        index += 1
    _key_visibility(mask, layer_path, data["splines"], shot_first, shot_last, to_scene)
    return layer


def _key_visibility(mask, layer_path: str, splines: list[dict], first: int, last: int, to_scene) -> None:
    """Keys the layer hidden on the frames where the object is gone (only where it ever is)."""
    visible = [_object_visible(splines, f) for f in range(first, last + 1)]
    if all(visible):
        return
    changes = [(f, vis) for i, (f, vis) in enumerate(zip(range(first, last + 1), visible, strict=True))
               if i == 0 or vis != visible[i - 1]]
    fcurves = animation.fcurves_of(mask, f"{layer_path}.hide", to_scene(first))
    frames = [to_scene(f) for f, _ in changes]
    hidden = [0.0 if vis else 1.0 for _, vis in changes]
    for prop in ("hide", "hide_render"):
        animation.fill_fcurve(fcurves, f"{layer_path}.{prop}", 0, frames, hidden, [animation.CONSTANT] * len(frames))


def import_shapes(clip: bpy.types.MovieClip, files: dict[str, str], mask_name: str | None = None,
                  ours: list[str] | None = None) -> tuple[bpy.types.Mask, dict[str, str]]:
    """The Mask for a shot's objects ({object name: shapes file}), made or updated in place.

    `ours`: the layers an earlier import made, which this one replaces; a layer of an object's
    name that the artist drew is kept under a new name instead. Returns the mask and
    {old name: new name} of the layers so kept."""
    mask_name = mask_name or f"{clip.name} roto"
    mask = bpy.data.masks.get(mask_name) or bpy.data.masks.new(mask_name)
    shapes = {}
    for name, path in files.items():
        if not os.path.isfile(path):
            raise ShapesError(f"The shapes of '{name}' are missing: {path}. Export the shot again.")
        shapes[name] = read_shapes(path)
    kept = {}
    for name in shapes:
        drawn = mask.layers.get(name)
        if drawn is not None and ours is not None and name not in ours:
            drawn.name = f"{name} (drawn)"  # (Blender numbers it if that name is taken too)
            kept[name] = drawn.name
    for name, data in shapes.items():
        import_object(mask, clip, data, name)
    if shapes:  # the shot's frames, on the scene frames the clip shows them
        first = min(int(d["frame_range"][0]) for d in shapes.values())
        last = max(int(d["frame_range"][1]) for d in shapes.values())
        mask.frame_start, mask.frame_end = footage.scene_frame(clip, first), footage.scene_frame(clip, last)
    return mask, kept
