"""The masks drawn over the clip in the Movie Clip Editor, in each object's colour, as soon as the
service answers.

Each mask PNG becomes a small RGBA image datablock (hidden: its name starts with a dot) whose
alpha is the mask; a draw handler puts those of the current frame over the frame with the `gpu`
module. The clip editor's view2d maps the frame to 0..1 (movieclip_main_area_set_view2d), so
`view_to_region` places the quad. Nothing is drawn in background mode (no GPU there); the images
are still made, so scripts and tests can check them.
"""

from __future__ import annotations

import os

import bpy
import numpy as np

from . import coordinates, footage

OPACITY = 0.45
_handle = None
_shown: dict[str, tuple[int, str | None]] = {}  # object -> (source frame, mask PNG) now in its image


def image_name(obj: str) -> str:
    return f".sam2roto overlay {obj}"


def show(obj: str, frame: int, mask_path: str | None, colour) -> bpy.types.Image | None:
    """Makes `obj`'s overlay image the mask of `frame` (none where the frame has no mask)."""
    name = image_name(obj)
    if mask_path is None:
        image = bpy.data.images.get(name)
        if image is not None:
            bpy.data.images.remove(image)
        _shown[obj] = (frame, None)
        return None
    grey = bpy.data.images.load(mask_path, check_existing=False)
    try:
        width, height = grey.size
        pixels = np.empty(width * height * 4, np.float32)
        grey.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(grey)
    rgba = np.empty((width * height, 4), np.float32)
    rgba[:, :3] = colour[:3]
    rgba[:, 3] = pixels.reshape(-1, 4)[:, 0] * OPACITY
    image = bpy.data.images.get(name)
    if image is None or tuple(image.size) != (width, height):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, width, height, alpha=True)
        image.colorspace_settings.name = "Non-Color"
    image.pixels.foreach_set(rgba.ravel())
    image.update()
    _shown[obj] = (frame, mask_path)
    return image


def forget() -> None:
    for obj in list(_shown):
        image = bpy.data.images.get(image_name(obj))
        if image is not None:
            bpy.data.images.remove(image)
    _shown.clear()


def drawn_objects(scene) -> list[str]:
    """The objects whose overlay is drawn: those showing the frame on screen (after a scrub
    while tracking runs, the overlays still show the frame tracking started on)."""
    shot = getattr(scene, "sam2roto", None)
    if shot is None or shot.clip is None:
        return []
    here = footage.source_frame(shot.clip, scene.frame_current)
    # (answers are files in their shot's folder: another scene's shot may name its objects alike)
    # (real paths: the core names the files through the links it resolved)
    folder = os.path.join(os.path.realpath(bpy.path.abspath(shot.folder)), "")
    return [obj for obj in shot.object_names()
            if _shown.get(obj, (None, None))[0] == here and bpy.data.images.get(image_name(obj)) is not None
            and os.path.realpath(_shown[obj][1]).startswith(folder)]


def _draw():
    import gpu
    from gpu_extras.batch import batch_for_shader

    space = bpy.context.space_data
    region = bpy.context.region
    scene = bpy.context.scene
    shot = getattr(scene, "sam2roto", None)
    if shot is None or space is None or space.clip is None or space.clip != shot.clip:
        return
    if coordinates.moved_in_view(space):
        return  # (it would sit off the moved frame)
    x0, y0 = region.view2d.view_to_region(0.0, 0.0, clip=False)
    x1, y1 = region.view2d.view_to_region(1.0, 1.0, clip=False)
    shader = gpu.shader.from_builtin("IMAGE")
    gpu.state.blend_set("ALPHA")
    for obj in drawn_objects(scene):
        texture = gpu.texture.from_image(bpy.data.images[image_name(obj)])
        batch = batch_for_shader(shader, "TRI_FAN", {"pos": ((x0, y0), (x1, y0), (x1, y1), (x0, y1)),
                                                      "texCoord": ((0, 0), (1, 0), (1, 1), (0, 1))})
        shader.uniform_sampler("image", texture)
        batch.draw(shader)
    gpu.state.blend_set("NONE")


def register():
    global _handle
    if not bpy.app.background and _handle is None:
        _handle = bpy.types.SpaceClipEditor.draw_handler_add(_draw, (), "WINDOW", "POST_PIXEL")


def unregister():
    global _handle
    if _handle is not None:
        bpy.types.SpaceClipEditor.draw_handler_remove(_handle, "WINDOW")
        _handle = None
    forget()
