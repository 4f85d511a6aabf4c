"""F-curves of a datablock, filled in bulk, across Blender's two animation APIs.

Up to 4.5 an Action has `fcurves`; from 5.0 they live in the channelbag of the action's slot
for that datablock (layered actions). Keying one property first with `keyframe_insert` makes
Blender create whatever that version needs (action, slot, layer, strip, channelbag).
"""

from __future__ import annotations

import bpy

CONSTANT, LINEAR = "CONSTANT", "LINEAR"
# enum values of Keyframe.interpolation, as foreach_set takes them (BEZT_IPO_CONST, BEZT_IPO_LIN)
_INTERPOLATION_CODES = {CONSTANT: 0, LINEAR: 1}


def fcurves_of(id_data: bpy.types.ID, first_path: str, frame: float):
    """The F-curve collection of `id_data`'s action, creating the action by keying `first_path`."""
    if id_data.animation_data is None or id_data.animation_data.action is None:
        id_data.keyframe_insert(first_path, frame=frame)
    anim = id_data.animation_data
    action = anim.action
    if hasattr(action, "fcurves"):  # Blender 4.x
        return action.fcurves
    slot = anim.action_slot
    for layer in action.layers:
        for strip in layer.strips:
            channelbag = strip.channelbag(slot, ensure=True)
            if channelbag is not None:
                return channelbag.fcurves
    raise RuntimeError(f"{id_data.name}: no channelbag for its action slot")  # pragma: no cover


def remove_fcurves(fcurves, path_prefix: str) -> None:
    for fc in [fc for fc in fcurves if fc.data_path.startswith(path_prefix)]:
        fcurves.remove(fc)


def fill_fcurve(fcurves, data_path: str, index: int, frames: list[float], values: list[float],
                interpolations: list[str]) -> None:
    """One F-curve holding exactly these keys (replacing any it had)."""
    fc = fcurves.find(data_path, index=index)
    if fc is None:
        fc = fcurves.new(data_path, index=index)
    else:
        fc.keyframe_points.clear()
    points = fc.keyframe_points
    points.add(len(frames))
    co = [0.0] * (2 * len(frames))
    co[0::2], co[1::2] = frames, values
    points.foreach_set("co", co)
    points.foreach_set("interpolation", [_INTERPOLATION_CODES[i] for i in interpolations])
    fc.update()
