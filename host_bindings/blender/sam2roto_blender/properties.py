"""What a scene keeps of its shot (saved in the .blend): the clip, the shot folder, the objects
with their colours, and where the results went."""

from __future__ import annotations

import bpy
from bpy.props import (
    CollectionProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import blend_paths

# folders: a "//" path is relative to the .blend; set from the panel, it is relative to the
# .blend as it is then (blend_paths notes which). Blender 5 asks for that to be said.
RELATIVE = {"PATH_SUPPORTS_BLEND_RELATIVE"} if "is_path_supports_blend_relative" in \
    bpy.types.Property.bl_rna.properties else set()
FOLDER = dict(subtype="DIR_PATH", options=RELATIVE, update=blend_paths.note_base)

# colours given to new objects in turn (clearly distinct over a plate)
PALETTE = [(1.0, 0.35, 0.2), (0.2, 0.75, 1.0), (0.45, 1.0, 0.3), (1.0, 0.85, 0.2), (0.85, 0.4, 1.0),
           (1.0, 0.45, 0.7), (0.3, 1.0, 0.85), (0.6, 0.6, 1.0)]


class SAM2ROTO_Object(bpy.types.PropertyGroup):
    # `name` (from PropertyGroup) is the object's name in the shot
    colour: FloatVectorProperty(name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=PALETTE[0])


class SAM2ROTO_Shot(bpy.types.PropertyGroup):
    clip: PointerProperty(name="Clip", type=bpy.types.MovieClip, description="The clip the shot was made from")
    folder: StringProperty(name="Shot folder", description="Where the core keeps this shot: cache, prompts, "
                                                          "tracking results", **FOLDER)
    objects: CollectionProperty(type=SAM2ROTO_Object)
    active_object: IntProperty(name="Active object", default=0)
    export_folder: StringProperty(name="Mattes folder",
                                  description="Where Import Results has the core write the mattes and shapes",
                                  **FOLDER)
    # which .blend folder the relative folders above are relative to (see blend_paths)
    paths_base: StringProperty(default="", options={"HIDDEN"})
    shape_tolerance: FloatProperty(name="Key tolerance", default=0.0, min=0.0, soft_max=5.0, unit="NONE",
                                   description="Key a mask frame only where the shape moves more than this many "
                                               "pixels from the blend of its neighbours (0: key every frame)")
    mask: PointerProperty(name="Mask", type=bpy.types.Mask, description="The animated mask made by Import Results")
    # the layers Import Results made in it (a JSON list): those of objects since removed or
    # renamed go at the next import; layers drawn by hand stay
    imported_layers: StringProperty(default="[]", options={"HIDDEN"})
    prompt_mask: PointerProperty(name="Prompt mask", type=bpy.types.Mask,
                                 description="A mask you drew, to use as a prompt for the active object")

    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    def active(self) -> SAM2ROTO_Object | None:
        if 0 <= self.active_object < len(self.objects):
            return self.objects[self.active_object]
        return None


classes = (SAM2ROTO_Object, SAM2ROTO_Shot)


def register():
    bpy.types.Scene.sam2roto = PointerProperty(type=SAM2ROTO_Shot)


def unregister():
    del bpy.types.Scene.sam2roto
