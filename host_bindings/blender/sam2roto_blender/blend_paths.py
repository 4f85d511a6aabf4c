"""The scene's shot folders kept as Blender keeps its own paths: relative to the saved .blend
(`//...`) when the preferences ask for relative paths, so a project folder moved elsewhere
keeps its shots. Blender's Save As remaps only its own paths, not an add-on's: the handlers
here do the same for the shot's folders, and keep them right through a Save Copy, a save that
fails, and an undo to before a Save As.

Each scene records which .blend folder its relative paths were made for (`paths_base`),
tagged with this opening of the file: a state undo brings back from before a Save As is
rebased to where the .blend is now. Another tag (another Blender session, or an earlier
opening in this one) means the paths came with the file as it was opened, relative to where
it was opened from (however it got there: a project folder moved while Blender ran too)."""

from __future__ import annotations

import os
import secrets

import bpy

SHOT_PATHS = ("folder", "export_folder")  # the scene's shot properties that hold folders
_opened_from = [""]  # the folder of the .blend as it was opened
_opening_tag = [secrets.token_hex(6)]  # this opening of the .blend


def _blend_folder() -> str:
    return os.path.dirname(bpy.data.filepath) if bpy.data.filepath else ""


def keep(shot, name: str, path: str) -> None:
    """Sets the shot's folder `name` to the absolute `path`, kept as the preferences ask."""
    setattr(shot, name, _stored(path, _blend_folder()))
    note_base(shot)


def note_base(shot, _context=None) -> None:
    """The shot's relative folders are relative to the .blend as it is now (the folders'
    update: one the artist sets in the panel is)."""
    shot.paths_base = f"{_opening_tag[0]}:{_blend_folder()}"


def as_kept(path: str) -> str:
    """An absolute `path` as Blender keeps its own paths: relative to the saved .blend where
    the preferences ask for relative paths (for the matte images a project carries along)."""
    return _stored(path, _blend_folder())


def _stored(path: str, folder: str) -> str:
    """`path` relative to `folder` (a .blend's) where relative paths are asked for."""
    if not folder or not bpy.context.preferences.filepaths.use_relative_paths:
        return path
    try:
        return bpy.path.relpath(path, start=folder)
    except ValueError:  # (another drive, on Windows: it stays absolute)
        return path


def _base(shot) -> str:
    """The .blend folder the shot's relative paths are relative to."""
    tag, _, folder = shot.paths_base.partition(":")
    return folder if tag == _opening_tag[0] else _opened_from[0]


def _rebase(shot, new: str, *, absolute_too: bool = False) -> None:
    """The shot's folders made relative to `new`, pointing where they pointed."""
    old = _base(shot)
    for name in SHOT_PATHS:
        value = getattr(shot, name)
        if value.startswith("//") and old:
            setattr(shot, name, _stored(bpy.path.abspath(value, start=old), new))
        elif value and not value.startswith("//") and absolute_too:
            setattr(shot, name, _stored(value, new))
    shot.paths_base = f"{_opening_tag[0]}:{new}"


def _own_scenes():
    return [s for s in bpy.data.scenes if s.library is None]  # (a linked scene is its own file's)


_kept: dict[str, tuple] = {}  # scene -> its paths before a save remapped them


@bpy.app.handlers.persistent
def remap_before_save(filepath: str, _=None) -> None:
    """Saved into another folder, the relative paths are written relative to it; saved for
    the first time, the absolute ones become relative (as Blender does with its own)."""
    _kept.clear()
    if not filepath:
        return
    new, first_save = os.path.dirname(os.path.abspath(filepath)), not bpy.data.filepath
    for scene in _own_scenes():
        shot = scene.sam2roto
        if first_save or os.path.normcase(_base(shot)) != os.path.normcase(new):
            _kept[scene.name] = tuple(getattr(shot, n) for n in (*SHOT_PATHS, "paths_base"))
            _rebase(shot, new, absolute_too=first_save)


@bpy.app.handlers.persistent
def restore_after_copy(filepath: str, _=None) -> None:
    """Save Copy: the open .blend stays where it was, and so do its paths."""
    if bpy.data.filepath != filepath:
        _restore()
    _kept.clear()


@bpy.app.handlers.persistent
def restore_after_failure(_filepath: str, _=None) -> None:
    """A save that failed (a full disk, a folder not there): nothing moved."""
    _restore()


def _restore() -> None:
    for scene_name, values in _kept.items():
        scene = bpy.data.scenes.get(scene_name)
        if scene is not None:
            for name, value in zip((*SHOT_PATHS, "paths_base"), values, strict=True):
                setattr(scene.sam2roto, name, value)
    _kept.clear()


@bpy.app.handlers.persistent
def rebase_after_undo(_scene=None, _depsgraph=None) -> None:
    """Undo to before a Save As into another folder brings back paths made for the old one."""
    here = _blend_folder()
    for scene in _own_scenes():
        base = _base(scene.sam2roto)
        if here and base and os.path.normcase(base) != os.path.normcase(here):
            _rebase(scene.sam2roto, here)


@bpy.app.handlers.persistent
def note_where_opened(_filepath=None, _=None) -> None:
    _opened_from[0] = _blend_folder()
    _opening_tag[0] = secrets.token_hex(6)


HANDLERS = (("save_pre", remap_before_save), ("save_post", restore_after_copy),
            ("save_post_fail", restore_after_failure), ("undo_post", rebase_after_undo),
            ("redo_post", rebase_after_undo), ("load_post", note_where_opened))
