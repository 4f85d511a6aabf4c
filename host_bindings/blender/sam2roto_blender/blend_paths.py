"""The scene's shot folders kept as Blender keeps its own paths: relative to the saved .blend
(`//...`) when the preferences ask for relative paths, so a project folder moved elsewhere
keeps its shots; and Save As to another folder remaps them, as it remaps Blender's paths
(Blender's remap knows only its own data, not an add-on's properties)."""

from __future__ import annotations

import os

import bpy

SHOT_PATHS = ("folder", "export_folder")  # the scene's shot properties that hold folders


def stored(path: str) -> str:
    """How the scene keeps the absolute `path`."""
    if not bpy.data.filepath or not bpy.context.preferences.filepaths.use_relative_paths:
        return path
    return _relative_to(path, os.path.dirname(bpy.data.filepath))


def _relative_to(path: str, folder: str) -> str:
    try:
        return bpy.path.relpath(path, start=folder)
    except ValueError:  # (another drive, on Windows: it stays absolute)
        return path


_kept: dict[tuple[str, str], str] = {}  # (scene, property) -> its path before a save remapped it


@bpy.app.handlers.persistent
def remap_before_save(filepath: str, _=None) -> None:
    """Saved into another folder: the relative paths are written relative to it."""
    _kept.clear()
    if not bpy.data.filepath or not filepath:
        return
    new = os.path.dirname(os.path.abspath(filepath))
    if os.path.normcase(new) == os.path.normcase(os.path.dirname(bpy.data.filepath)):
        return
    for scene in bpy.data.scenes:
        shot = scene.sam2roto
        for name in SHOT_PATHS:
            value = getattr(shot, name)
            if value.startswith("//"):
                _kept[(scene.name, name)] = value
                setattr(shot, name, _relative_to(bpy.path.abspath(value), new))  # (abspath: from the old .blend)


@bpy.app.handlers.persistent
def restore_after_copy(filepath: str, _=None) -> None:
    """Save Copy: the open .blend stays where it was, and so do its paths."""
    if bpy.data.filepath != filepath:
        for (scene_name, name), value in _kept.items():
            scene = bpy.data.scenes.get(scene_name)
            if scene is not None:
                setattr(scene.sam2roto, name, value)
    _kept.clear()


HANDLERS = (("save_pre", remap_before_save), ("save_post", restore_after_copy))


def register():
    for kind, handler in HANDLERS:
        getattr(bpy.app.handlers, kind).append(handler)


def unregister():
    for kind, handler in HANDLERS:
        if handler in getattr(bpy.app.handlers, kind):
            getattr(bpy.app.handlers, kind).remove(handler)
