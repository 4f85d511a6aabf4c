"""Clicking on the clip: a thin modal layer over the prompt operators.

Click: a point on the object. Ctrl-click: a point on what is not the object. Drag: a box.
Ctrl-Z: undo the last prompt. Esc or right-click: done. Everything else (scrubbing, zooming,
panning) passes through to Blender.
"""

from __future__ import annotations

import bpy

from . import coordinates

DRAG_PIXELS = 5  # a press that moves less than this is a click


def region_to_plate(region, mouse_x: int, mouse_y: int, width: int, height: int) -> tuple[float, float]:
    """Mouse position in the clip editor's main region -> plate pixels (the view2d spans the frame 0..1)."""
    u, v = region.view2d.region_to_view(mouse_x, mouse_y)
    return coordinates.clip_to_plate(u, v, width, height)


def over_the_clip(area, region, x: int, y: int) -> bool:
    """Whether the window point (x, y) is on the clip's own region and under none of the
    area's other regions (the sidebar, header and toolbar, which may overlap it)."""
    def under(r) -> bool:
        return r.width > 1 and r.height > 1 and r.x <= x < r.x + r.width and r.y <= y < r.y + r.height

    return under(region) and not any(r.type != "WINDOW" and under(r) for r in area.regions)


class SAM2ROTO_OT_prompt_tool(bpy.types.Operator):
    """Click the object to add points (Ctrl: negative), drag for a box, Ctrl-Z to undo, Esc when done"""

    bl_idname = "sam2roto.prompt_tool"
    bl_label = "Click to Prompt"

    @classmethod
    def poll(cls, context):
        shot = getattr(context.scene, "sam2roto", None)
        space = context.space_data
        return (shot is not None and shot.clip is not None and space is not None
                and space.type == "CLIP_EDITOR" and space.clip == shot.clip)

    def invoke(self, context, _event):
        moved = coordinates.moved_in_view(context.space_data)
        if moved:
            self.report({"ERROR"}, f"Clicks are read on the plate as it is, but {moved}: turn that off to prompt.")
            return {"CANCELLED"}
        self._press = None
        context.window_manager.modal_handler_add(self)
        context.area.header_text_set("SAM 2: click the object · Ctrl-click: not the object · drag: box · "
                                     "Ctrl-Z: undo · Esc: done")
        return {"RUNNING_MODAL"}

    def _finish(self, context):
        context.area.header_text_set(None)
        return {"FINISHED"}

    def modal(self, context, event):
        if event.type in {"ESC", "RIGHTMOUSE"} and event.value == "PRESS":
            return self._finish(context)
        if event.type == "Z" and event.value == "PRESS" and (event.ctrl or event.oskey) and not event.shift:
            self._call(bpy.ops.sam2roto.undo_prompt)
            return {"RUNNING_MODAL"}
        if event.type == "LEFTMOUSE" and event.value == "PRESS":
            if not over_the_clip(context.area, context.region, event.mouse_x, event.mouse_y):
                return {"PASS_THROUGH"}  # the sidebar's buttons, the timeline: theirs
            self._press = (event.mouse_region_x, event.mouse_region_y, event.ctrl)
            return {"RUNNING_MODAL"}
        if event.type == "LEFTMOUSE" and event.value == "RELEASE" and self._press is not None:
            self._prompt(context, self._press, (event.mouse_region_x, event.mouse_region_y))
            self._press = None
            return {"RUNNING_MODAL"}
        return {"PASS_THROUGH"}

    def _call(self, operator, **kwargs) -> None:
        """A prompt the add-on refuses (a click beside the plate, no object yet) is reported
        and the tool goes on: bpy raises the operator's error, which would end the tool."""
        try:
            operator(**kwargs)
        except RuntimeError as e:
            self.report({"WARNING"}, str(e).removeprefix("Error:").strip())

    def _prompt(self, context, press, release):
        width, height = context.space_data.clip.size
        x0, y0 = region_to_plate(context.region, press[0], press[1], width, height)
        if abs(release[0] - press[0]) < DRAG_PIXELS and abs(release[1] - press[1]) < DRAG_PIXELS:
            self._call(bpy.ops.sam2roto.add_point, x=x0, y=y0, negative=press[2], frame=context.scene.frame_current)
            return
        x1, y1 = region_to_plate(context.region, release[0], release[1], width, height)
        self._call(bpy.ops.sam2roto.add_box, x0=min(x0, x1), y0=min(y0, y1), x1=max(x0, x1), y1=max(y0, y1),
                   frame=context.scene.frame_current)


classes = (SAM2ROTO_OT_prompt_tool,)
