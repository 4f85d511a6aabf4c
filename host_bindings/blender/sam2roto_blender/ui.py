"""The SAM 2 tab in the Movie Clip Editor's sidebar (N): shot, objects, prompts, tracking, results."""

from __future__ import annotations

import bpy

# (not operators: with ui importing it, bpy 4.2 as a module crashes at exit, as in the installer)
from . import footage
from .session import SESSION


def tracking_label(scene) -> str:
    """How far tracking is, in the scene's frame numbers (the core counts the footage's)."""
    done, total, frame = SESSION.progress or (0, 0, 0)
    where = ""
    shot = scene.sam2roto
    if done and shot.clip is not None and SESSION.is_open(shot):  # (not another scene's shot)
        try:
            where = f" (frame {footage.scene_frame(shot.clip, frame)})"
        except footage.FootageError:
            pass
    return f"Tracking: {done}/{total}{where} · Esc cancels"


class SAM2ROTO_UL_objects(bpy.types.UIList):
    def draw_item(self, _context, layout, _data, item, _icon, _active_data, _active_prop, _index=0, _flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "colour", text="")
        row.label(text=item.name)


class _Panel:
    bl_space_type = "CLIP_EDITOR"
    bl_region_type = "UI"
    bl_category = "SAM 2"


class SAM2ROTO_PT_shot(_Panel, bpy.types.Panel):
    bl_label = "SAM 2 Roto"

    def draw(self, context):
        layout = self.layout
        shot = context.scene.sam2roto
        layout.operator("sam2roto.create_shot", icon="FILE_MOVIE")
        if SESSION.opening:  # (a first use of a model downloads its weights: minutes)
            layout.label(text=SESSION.status or "Opening the shot...", icon="TIME")
            if SESSION.opening_downloads:  # (an opening with the .blend downloads nothing: seconds)
                layout.operator("sam2roto.cancel_shot", icon="CANCEL")
        if shot.clip is None:
            layout.label(text="Open a clip, then Create Shot")
            return
        layout.label(text=f"Shot: {shot.clip.name}", icon="SEQUENCE")
        layout.prop(shot, "folder", text="")
        row = layout.row()
        row.template_list("SAM2ROTO_UL_objects", "", shot, "objects", shot, "active_object", rows=3)
        col = row.column(align=True)
        col.operator("sam2roto.add_object", icon="ADD", text="")
        col.operator("sam2roto.remove_object", icon="REMOVE", text="")
        col.operator("sam2roto.rename_object", icon="SORTALPHA", text="")


class _ShotPanel(_Panel):
    """A sub-panel shown once the scene has a shot."""

    bl_parent_id = "SAM2ROTO_PT_shot"

    @classmethod
    def poll(cls, context):
        return context.scene.sam2roto.clip is not None


class SAM2ROTO_PT_prompts(_ShotPanel, bpy.types.Panel):
    bl_label = "Prompts"

    def draw(self, context):
        layout = self.layout
        shot = context.scene.sam2roto
        layout.operator("sam2roto.prompt_tool", icon="RESTRICT_SELECT_OFF")
        layout.label(text="Click: object · Ctrl-click: not it · drag: box")
        layout.operator("sam2roto.undo_prompt", icon="LOOP_BACK")
        row = layout.row(align=True)
        row.prop(shot, "prompt_mask", text="")
        row.operator("sam2roto.add_mask_prompt", text="", icon="MOD_MASK")


class SAM2ROTO_PT_track(_ShotPanel, bpy.types.Panel):
    bl_label = "Track"

    def draw(self, context):
        layout = self.layout
        row = layout.row(align=True)
        row.operator("sam2roto.track", text="Backward", icon="TRACKING_BACKWARDS").direction = "BACKWARD"
        row.operator("sam2roto.track", text="Forward", icon="TRACKING_FORWARDS").direction = "FORWARD"
        layout.operator("sam2roto.track", text="Track Whole Shot", icon="TRACKING").direction = "WHOLE"
        if SESSION.tracking:
            layout.label(text=tracking_label(context.scene), icon="TIME")
            layout.operator("sam2roto.cancel_track", icon="CANCEL")
        elif SESSION.status:
            layout.label(text=SESSION.status)
        if SESSION.last_error:
            layout.label(text=SESSION.last_error.splitlines()[0], icon="ERROR")


class SAM2ROTO_PT_results(_ShotPanel, bpy.types.Panel):
    bl_label = "Results"

    def draw(self, context):
        layout = self.layout
        shot = context.scene.sam2roto
        layout.prop(shot, "export_folder")
        layout.prop(shot, "shape_tolerance")
        layout.operator("sam2roto.import_results", icon="IMPORT")
        layout.operator("sam2roto.import_shapes", icon="FILE")
        if shot.mask is not None:
            layout.label(text=f"Mask: {shot.mask.name}", icon="MOD_MASK")


classes = (SAM2ROTO_UL_objects, SAM2ROTO_PT_shot, SAM2ROTO_PT_prompts, SAM2ROTO_PT_track, SAM2ROTO_PT_results)
