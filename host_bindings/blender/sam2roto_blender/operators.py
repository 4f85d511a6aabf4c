"""Every action of the add-on as an operator with explicit arguments (scene frames, plate pixels),
so it can be scripted and tested without a window. The panel's buttons and the click tool call
these same operators.

Quick bookkeeping (shot, objects) waits for the core's answer; anything that runs the model
(prompts, tracking, export) is answered later through the session's timer.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, StringProperty

from . import (
    blend_paths,
    compositor,
    coordinates,
    footage,
    mask_prompt,
    overlay,
    preferences,
    properties,
    shapes_import,
)
from . import client as rpc
from .session import SESSION, START_TIMEOUT, progress_begin, progress_end

USER_ERRORS = (rpc.ServiceError, footage.FootageError, shapes_import.ShapesError, ValueError, OSError)


class UserError(ValueError):
    """Something the artist can fix; the message says what."""


def _clip(context, name: str = "") -> bpy.types.MovieClip:
    if name:
        clip = bpy.data.movieclips.get(name)
        if clip is None:
            raise UserError(f"There is no clip named '{name}'.")
        return clip
    space = getattr(context, "space_data", None)
    if space is not None and getattr(space, "type", "") == "CLIP_EDITOR" and space.clip is not None:
        return space.clip
    if len(bpy.data.movieclips) == 1:
        return bpy.data.movieclips[0]
    raise UserError("Open the clip to roto in the Movie Clip Editor first.")


def _default_folder(clip: bpy.types.MovieClip) -> str:
    """Beside the .blend when it is saved, else beside the footage: <folder>/sam2roto/<clip name>."""
    base = os.path.dirname(bpy.data.filepath) if bpy.data.filepath else os.path.dirname(footage.clip_path(clip))
    return os.path.join(base, "sam2roto", bpy.path.clean_name(clip.name))


def _not_while_tracking(doing: str) -> None:
    """The core answers one request at a time and a track (or an import's export) holds it:
    what the add-on waits for (shot and object bookkeeping) would freeze Blender until it ends."""
    if SESSION.tracking:
        raise UserError(f"Wait for tracking to finish (or press Esc to cancel it) before {doing}.")
    if SESSION.importing:
        raise UserError(f"Wait for Import Results to finish before {doing}.")
    _not_while_opening()


def _not_while_opening() -> None:
    """A shot being made may first download the model's weights (minutes): what is asked
    of the core meanwhile would wait behind it, or go to the shot it opens. A shot opening
    with its .blend downloads nothing: that is waited for (seconds)."""
    SESSION.finish_opening()
    if SESSION.opening:
        raise UserError("Wait for the shot to open (the SAM 2 panel shows how far it is), or cancel it there.")


def _open_shot(context):
    """The scene's shot, opened in the running core (starting the core if needed)."""
    shot = context.scene.sam2roto
    if shot.folder and shot.clip is None:
        raise UserError(f"This scene's shot lost its clip (deleted): open the clip again in the Movie Clip Editor "
                        f"and press Create Shot (sidebar, SAM 2 tab) with the shot folder {shot.folder}; the shot, "
                        "with its objects and tracking, carries on.")
    if not shot.folder or shot.clip is None:
        raise UserError("This scene has no shot yet: open a clip in the Movie Clip Editor and press Create Shot "
                        "(sidebar, SAM 2 tab).")
    folder = bpy.path.abspath(shot.folder)
    prefs = preferences.get(context)
    _not_while_opening()
    SESSION.ensure_started(bpy.path.abspath(prefs.core_env))
    if not SESSION.is_open(shot):
        params = _shot_open_params(context.scene, prefs)
        try:
            SESSION.shot = SESSION.call("shot/open", params, timeout=START_TIMEOUT)
        except rpc.ServiceError as e:
            if e.code != rpc.WEIGHTS_MISSING:
                raise
            # the weights come first (minutes): as Create Shot does, the shot opens behind
            ShotRequest(context.scene, shot.clip, folder, params.get("source", ""), made=False).send(params)
            raise UserError("This shot's model is not on this computer yet: its weights are downloading (the SAM 2 "
                            "panel shows how far, and can cancel). Try again once the shot is open.") from None
        SESSION.masks.clear()
    return shot


def _shot_open_params(scene, prefs) -> dict:
    """What `shot/open` is asked for the scene's shot (the weights not downloaded)."""
    shot = scene.sam2roto
    # (the core encodes the frames nearest the artist's first in the background)
    params = {"shot": bpy.path.abspath(shot.folder), "device": prefs.device, "download": False,
              "frame": footage.source_frame(shot.clip, scene.frame_current)}
    try:  # where the clip is now, for a shot whose footage moved (the clip's file may be gone too)
        params["source"] = footage.source_path(shot.clip)
    except footage.FootageError:
        pass
    return params


def _follow_the_shots_objects(shot, info: dict) -> None:
    """The scene's object list as the core's shot has it (names, colours, in order); the
    active object stays active where it is still there."""
    records = [(r["object"], tuple(round(c, 4) for c in r["colour"][:3])) for r in info["objects"]]
    if [(o.name, tuple(round(c, 4) for c in o.colour)) for o in shot.objects] == records:
        return
    active = shot.active().name if shot.active() else None
    shot.objects.clear()
    for name, colour in records:
        item = shot.objects.add()
        item.name, item.colour = name, colour
    names = [name for name, _ in records]
    shot.active_object = names.index(active) if active in names else 0


def _source_frame(shot, scene_frame: int) -> int:
    source = footage.source_frame(shot.clip, scene_frame)
    numbers = SESSION.shot.get("frame_numbers") or list(range(SESSION.shot["frames"][0],
                                                              SESSION.shot["frames"][1] + 1))
    if source not in numbers:
        first, last = footage.scene_frame(shot.clip, numbers[0]), footage.scene_frame(shot.clip, numbers[-1])
        raise UserError(f"Frame {scene_frame} is outside the shot of clip '{shot.clip.name}' (frames {first} to "
                        f"{last}): go to a frame of the clip.")
    return source


def _object_name(shot, name: str) -> str:
    if name:
        if name not in shot.object_names():
            raise UserError(f"The shot has no object '{name}' (it has: {', '.join(shot.object_names()) or 'none'}). "
                            "Add it in the Objects list first.")
        return name
    active = shot.active()
    if active is None:
        raise UserError("Add an object to the shot first (Objects list, +), then prompt it.")
    return active.name


def _check_inside(x: float, y: float, what: str = "The point") -> None:
    width, height = SESSION.shot["size"]
    if not coordinates.inside(x, y, width, height):
        raise UserError(f"{what} ({x:.0f}, {y:.0f}) is outside the {width}x{height} plate.")


def _scene_frame_arg(op, context) -> int:
    return op.frame if op.properties.is_property_set("frame") else context.scene.frame_current


def _colour_to_service(colour) -> list[float]:
    return [round(float(c), 4) for c in colour[:3]]  # the service takes 0..1 per channel


class _Guarded:
    """Operators whose errors the artist can act on are reported, not raised as tracebacks."""

    def execute(self, context):
        try:
            return self.run(context)
        except USER_ERRORS as e:
            self.report({"ERROR"}, e.message if isinstance(e, rpc.ServiceError) else str(e))
            return {"CANCELLED"}


# an undo step of its own (a later one undone keeps it); no redo panel, which would undo the
# scene and run the operator again in the core, which undo does not touch
CHANGES_THE_SCENES_SHOT = {"UNDO"}
FRAME = IntProperty(name="Frame", description="Scene frame (default: the current frame)", options={"SKIP_SAVE"})
OBJECT = StringProperty(name="Object", description="Object of the shot (default: the active one)", default="")


FILES_OPENED = [0]  # .blend files opened in this Blender session (File > Open, Revert, New)


@bpy.app.handlers.persistent
def on_file_open(_filepath=None, _=None) -> None:
    FILES_OPENED[0] += 1
    SESSION.release_shot()  # (the shot is the closing file's: others may open it now)


@bpy.app.handlers.persistent
def on_file_loaded(_filepath=None, _=None) -> None:
    if not bpy.app.background:  # (a render farm's or a script's Blender: no core, no lock on the shot)
        open_with_blend(bpy.context.scene)


def open_with_blend(scene) -> bool:
    """A .blend whose scene has a shot was opened: the core starts and opens the shot in the
    background, so that its masks show and the first click is answered without waiting for the
    model. Nothing is downloaded, and nothing said but the status line where the shot cannot
    open: the artist's next action opens it, and says why where it cannot. Returns whether the
    opening was asked for."""
    shot, prefs = scene.sam2roto, preferences.get()
    env_dir = bpy.path.abspath(prefs.core_env)
    if (not prefs.open_with_blend or not shot.folder or shot.clip is None or SESSION.is_open(shot)
            or SESSION.tracking or SESSION.importing or not env_dir or not os.path.isfile(rpc.core_python(env_dir))):
        return False
    if SESSION.opening and SESSION.opening_downloads:
        return False  # (weights downloading for a shot of the closed file: this one opens at its next action)
    params = _shot_open_params(scene, prefs)
    scene_name, clip_name, file = scene.name, shot.clip.name, FILES_OPENED[0]

    def ended() -> bool:
        """The opening is over; whether its answer is still this file's to take."""
        if SESSION.opening_id == request_id:
            SESSION.opening_id = None
        return FILES_OPENED[0] == file

    def opened(info: dict) -> None:
        if not ended():
            return  # (the file closed meanwhile, and the core closes the shot again: see release_shot)
        again = bpy.data.scenes.get(scene_name)
        if again is None or not again.sam2roto.folder or os.path.realpath(info["shot"]) != os.path.realpath(
                bpy.path.abspath(again.sam2roto.folder)):
            return  # (the scene was renamed, or given another shot, meanwhile: its next action opens it)
        SESSION.shot = info
        SESSION.masks.clear()
        overlay.forget()
        _follow_the_shots_objects(again.sam2roto, info)
        SESSION.status = f"Opened the shot of '{clip_name}' ({len(info['objects'])} objects)"
        refresh_masks(again)

    def not_opened(error) -> None:
        if not ended():
            return
        message = error.message if isinstance(error, rpc.ServiceError) else str(error)
        if isinstance(error, rpc.ServiceError) and error.code == rpc.WEIGHTS_MISSING:
            message = "its model is not on this computer yet (your first action on the shot downloads it)"
        SESSION.status = f"The shot of '{clip_name}' is not open: {message.splitlines()[0]}"
        print(f"SAM 2 Roto: {SESSION.status}", file=sys.stderr)
        if isinstance(error, rpc.ServiceStopped):
            SESSION.forget_core()

    try:
        SESSION.ensure_started(env_dir, wait=False)
        request_id = SESSION.request("shot/open", params, on_result=opened, on_error=not_opened)
    except rpc.ServiceError as e:
        SESSION.status = f"The SAM 2 core did not start: {e.message.splitlines()[0]}"
        return False
    SESSION.opening_id, SESSION.opening_downloads = request_id, False
    SESSION.status = f"Opening the shot of '{clip_name}'..."
    return True


class ShotRequest:
    """A shot being made or opened for a scene. The core may first download the model's
    weights (minutes), so its answer comes through the session's timer, and is applied to
    the scene and clip that asked (looked up by name then: an undo meanwhile rebuilds them),
    unless another .blend was opened meanwhile."""

    def __init__(self, scene, clip, folder: str, source: str, made: bool):
        self.scene_name, self.clip_name, self.file = scene.name, clip.name, FILES_OPENED[0]
        self.folder, self.source, self.made = folder, source, made
        self.request_id: int | None = None
        self.done = self.cancelled = False
        self.message = self.error = ""  # what the artist is told once it is done
        self.watched = False  # an operator tells the artist how it ended (else the session does)

    def send(self, params: dict) -> None:
        if self.made:
            method = "shot/create"
        else:  # the clip's shot, made from another scene or .blend: carry on with it
            method, params = "shot/open", {k: params[k] for k in ("shot", "device", "frame", "source") if k in params}
        self.request_id = SESSION.request(method, params, on_result=self._answered, on_error=self._failed)
        SESSION.opening_id, SESSION.opening_downloads = self.request_id, True
        SESSION.status = f"Opening the shot of '{self.clip_name}'..."
        progress_begin()

    def _answered(self, info: dict) -> None:
        self._end()
        try:
            self.message = _take_shot(self, info)
        except Exception as e:  # (a scene it cannot be set up in: the artist hears why)
            self.error = str(e)
        self._tell()

    def _failed(self, error) -> None:
        self._end()
        self.cancelled = isinstance(error, rpc.ServiceError) and error.code == rpc.CANCELLED
        self.error = error.message if isinstance(error, rpc.ServiceError) else str(error)
        if isinstance(error, rpc.ServiceStopped):
            SESSION.forget_core()
        self._tell()

    def ended_unanswered(self) -> None:
        """The session let go of the core (stopped, or the add-on disabled) before it answered."""
        self.done, self.error = True, "The SAM 2 core stopped before the shot was open: Create Shot again."

    def _end(self) -> None:
        self.done = True
        SESSION.opening_id = None
        progress_end()

    def _tell(self) -> None:
        SESSION.status = "Shot not opened: download cancelled" if self.cancelled else self.message
        if self.error and not self.cancelled and not self.watched:
            SESSION.report_error(self.error)


def make_shot(context, clip_name: str = "", folder: str = "", model: str = "", checkpoint: str = "",
              input_size: int = 0) -> ShotRequest:
    """Ask the core for the clip's shot (made, or opened where the folder holds it already);
    returns at once. Empty arguments take the defaults and the preferences'."""
    _not_while_tracking("making a shot")
    clip = _clip(context, clip_name)
    prefs = preferences.get(context)
    folder = bpy.path.abspath(folder) if folder else _default_folder(clip)
    # (frames missing from a sequence: the frame before stands in, as Blender's clip plays on
    # through them; the artist is told which)
    params = {"shot": folder, "source": footage.source_path(clip), "device": prefs.device,
              "image_size": input_size or int(prefs.input_size),
              "frame": footage.source_frame(clip, context.scene.frame_current), "missing_frames": "hold"}
    colorspace = footage.core_colorspace(clip)
    if colorspace is not None:
        params["colorspace"] = colorspace
    if model or prefs.model:
        params["model"] = model or prefs.model
    if checkpoint or prefs.checkpoint:
        params["checkpoint"] = bpy.path.abspath(checkpoint or prefs.checkpoint)
    SESSION.ensure_started(bpy.path.abspath(prefs.core_env))
    made = not os.path.isfile(os.path.join(folder, "shot.json"))
    request = ShotRequest(context.scene, clip, folder, params["source"], made)
    request.send(params)
    return request


def _take_shot(request: ShotRequest, info: dict) -> str:
    """The core's shot becomes the scene's; returns what the artist is told."""
    if FILES_OPENED[0] != request.file:  # (the file opening had the core close it again: see release_shot)
        raise UserError(f"Another .blend was opened while the shot in {info['shot']} opened: it was not set up "
                        "there. Create Shot again.")
    SESSION.shot = info
    SESSION.masks.clear()
    overlay.forget()
    if not request.made and request.source and os.path.realpath(info["source"]) != os.path.realpath(request.source):
        raise UserError(f"{request.folder} holds the shot of other footage ({info['source']}): choose another "
                        "shot folder.")
    scene, clip = bpy.data.scenes.get(request.scene_name), bpy.data.movieclips.get(request.clip_name)
    if scene is None or clip is None:
        raise UserError(f"Scene '{request.scene_name}' or clip '{request.clip_name}' is gone: the shot in "
                        f"{info['shot']} was not set up. Create Shot again.")
    shot = scene.sam2roto
    if not SESSION.is_open(shot):  # (the scene had another shot, or none)
        shot.export_folder = ""  # (another shot's mattes folder: Import Results would force over its files)
    shot.clip = clip
    # (as asked, not as the core resolved it: through the links the artist's project uses)
    blend_paths.keep(shot, "folder", request.folder)
    shot.objects.clear()
    _follow_the_shots_objects(shot, info)
    first, last = info["frames"]
    # (a scene starts at frame 0 at the earliest: Blender clamps it there)
    scene.frame_start = max(footage.scene_frame(clip, first), 0)
    scene.frame_end = max(footage.scene_frame(clip, last), 0)
    what = "Shot" if request.made else f"Opened the shot ({len(info['objects'])} objects)"
    held = info.get("held") or []
    missing = (f"; frames {', '.join(map(str, held[:10]))}{' ...' if len(held) > 10 else ''} are missing from the "
               "sequence: the frame before stands in") if held else ""
    return (f"{what} of '{clip.name}': frames {first}-{last}, {info['size'][0]}x{info['size'][1]}{missing}"
            f"{_before_scene_frame_0(clip, first, last)}")


def _before_scene_frame_0(clip, first: int, last: int) -> str:
    """What the status says of shot frames that fall on negative scene frames, which Blender
    cannot show: a clip opened from a file in the middle of its sequence puts the files
    before it there. Empty when there are none."""
    start = footage.scene_frame(clip, first)
    if start >= 0:
        return ""
    end = min(footage.source_frame(clip, -1), last)
    lost = f"frame {first} falls" if end == first else f"frames {first}-{end} fall"
    return (f"; {lost} before scene frame 0, where Blender cannot show them (the clip was opened "
            f"from {os.path.basename(clip.filepath)}): to reach them, set the clip's Start Frame to "
            f"{clip.frame_start - start + 1} (Movie Clip Editor, sidebar, Footage) and Create Shot again")


class SAM2ROTO_OT_create_shot(_Guarded, bpy.types.Operator):
    """Make a SAM 2 shot of the clip: its footage, frames and colour space (a first use of a
    model downloads its weights: the panel shows how far, Esc cancels)"""

    bl_idname = "sam2roto.create_shot"
    bl_label = "Create Shot"
    bl_options = CHANGES_THE_SCENES_SHOT

    clip: StringProperty(name="Clip", description="Clip name (default: the clip in the editor)", default="")
    folder: StringProperty(name="Shot folder", subtype="DIR_PATH", default="",
                           description="Where the core keeps the shot (default: sam2roto/<clip> beside the .blend)")
    model: StringProperty(name="Model", default="", description="SAM 2 model (default: the preferences')")
    checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH", default="",
                               description="Checkpoint file (default: the preferences', else the official one)")
    input_size: IntProperty(name="Input size", default=0, min=0,
                            description="The network's square input in pixels (0: the preferences')")

    def _send(self, context) -> ShotRequest:
        request = make_shot(context, self.clip, self.folder, self.model, self.checkpoint, self.input_size)
        request.watched = True
        return request

    def run(self, context):
        """From a script: waits for the shot, however long its weights take to download."""
        request = self._send(context)
        SESSION.wait(timeout=None)
        return self._finish(request)

    def _finish(self, request: ShotRequest):
        if not request.done:
            request.ended_unanswered()
        if request.cancelled:
            self.report({"WARNING"}, request.error)
            return {"CANCELLED"}
        if request.error:
            raise UserError(request.error)
        self.report({"INFO"}, request.message)
        return {"FINISHED"}

    def invoke(self, context, _event):
        """From the panel: Blender stays usable while the core opens the shot."""
        try:
            self._request = self._send(context)
        except USER_ERRORS as e:
            self.report({"ERROR"}, e.message if isinstance(e, rpc.ServiceError) else str(e))
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if self._request.done or SESSION.opening_id != self._request.request_id:
            self.cancel(context)
            try:
                return self._finish(self._request)
            except UserError as e:
                self.report({"ERROR"}, str(e))
                return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            SESSION.cancel_opening()
        return {"PASS_THROUGH"}

    def cancel(self, context):
        """Blender ends the modal (another .blend opened): the request goes on, unwatched."""
        self._request.watched = False
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


class SAM2ROTO_OT_cancel_shot(bpy.types.Operator):
    """Stop opening the shot (a download of the model's weights keeps what arrived, for the next try)"""

    bl_idname = "sam2roto.cancel_shot"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    def execute(self, _context):
        if not SESSION.opening:
            self.report({"WARNING"}, "No shot is being opened.")
            return {"CANCELLED"}
        SESSION.cancel_opening()
        return {"FINISHED"}


class SAM2ROTO_OT_add_object(_Guarded, bpy.types.Operator):
    """Add an object to roto (it gets its own colour and mask layer)"""

    bl_idname = "sam2roto.add_object"
    bl_label = "Add Object"
    bl_options = CHANGES_THE_SCENES_SHOT

    name: StringProperty(name="Name", default="", description="Unique name (default: object N)")
    colour: FloatVectorProperty(name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0,
                                default=(-1.0, -1.0, -1.0), options={"SKIP_SAVE"})

    def run(self, context):
        _not_while_tracking("adding an object")
        shot = _open_shot(context)
        names = shot.object_names()
        name = self.name.strip() or next(f"object {i}" for i in range(1, len(names) + 2) if f"object {i}" not in names)
        if name in names:
            raise UserError(f"The shot already has an object '{name}': choose another name.")
        colour = tuple(self.colour) if self.colour[0] >= 0 else properties.PALETTE[len(names) % len(properties.PALETTE)]
        SESSION.call("object/add", {"object": name, "colour": _colour_to_service(colour)})
        item = shot.objects.add()
        item.name, item.colour = name, colour
        shot.active_object = len(shot.objects) - 1
        return {"FINISHED"}


class SAM2ROTO_OT_remove_object(_Guarded, bpy.types.Operator):
    """Remove the object and its prompts and tracking from the shot"""

    bl_idname = "sam2roto.remove_object"
    bl_label = "Remove Object"
    bl_options = CHANGES_THE_SCENES_SHOT

    name: OBJECT

    def run(self, context):
        _not_while_tracking("removing an object")
        shot = _open_shot(context)
        name = _object_name(shot, self.name)
        SESSION.call("object/remove", {"object": name})
        shot.objects.remove(shot.object_names().index(name))
        shot.active_object = min(shot.active_object, len(shot.objects) - 1)
        overlay.show(name, 0, None, (0, 0, 0))
        return {"FINISHED"}


class SAM2ROTO_OT_rename_object(_Guarded, bpy.types.Operator):
    """Rename the object (its prompts and tracking stay; the next Import Results names its layer so)"""

    bl_idname = "sam2roto.rename_object"
    bl_label = "Rename Object"
    bl_options = CHANGES_THE_SCENES_SHOT

    name: OBJECT
    new_name: StringProperty(name="New name", default="")

    def invoke(self, context, _event):
        active = context.scene.sam2roto.active()
        self.new_name = active.name if active else ""
        return context.window_manager.invoke_props_dialog(self)

    def run(self, context):
        _not_while_tracking("renaming an object")
        shot = _open_shot(context)
        name = _object_name(shot, self.name)
        new_name = self.new_name.strip()
        if not new_name:
            raise UserError("Give the object a name.")
        if new_name != name and new_name in shot.object_names():
            raise UserError(f"The shot already has an object '{new_name}': choose another name.")
        SESSION.call("object/rename", {"object": name, "name": new_name})
        shot.objects[shot.object_names().index(name)].name = new_name
        overlay.show(name, 0, None, (0, 0, 0))  # its overlay is drawn again under the new name
        SESSION.masks = {(new_name if obj == name else obj, frame): path
                         for (obj, frame), path in SESSION.masks.items()}
        refresh_masks(context.scene)
        return {"FINISHED"}


def _on_frame_answer(answer: dict) -> None:
    SESSION.frame_answer(answer)


def _send_prompt(shot, name: str, source: int, answered: Callable[[], None] | None = None, **prompt) -> None:
    """`answered`: run once the core has answered, whether it took the prompt or not."""
    def result(answer):
        if answered is not None:
            answered()
        _on_frame_answer(answer)

    def error(e):
        if answered is not None:
            answered()
        SESSION.report_error(e)

    SESSION.request("prompt/add", {"object": name, "frame": source, **prompt}, on_result=result, on_error=error)


class SAM2ROTO_OT_add_point(_Guarded, bpy.types.Operator):
    """Click on the object (Ctrl: on what is not the object) on this frame"""

    bl_idname = "sam2roto.add_point"
    bl_label = "Add Point"
    bl_options = {"REGISTER"}

    x: FloatProperty(name="X", description="Plate pixels from the left")
    y: FloatProperty(name="Y", description="Plate pixels from the top")
    negative: BoolProperty(name="Negative", description="A point that is not the object", default=False)
    frame: FRAME
    object: OBJECT

    def run(self, context):
        shot = _open_shot(context)
        name = _object_name(shot, self.object)
        source = _source_frame(shot, _scene_frame_arg(self, context))
        _check_inside(self.x, self.y)
        _send_prompt(shot, name, source, points=[[self.x, self.y]], labels=[0 if self.negative else 1])
        return {"FINISHED"}


class SAM2ROTO_OT_add_box(_Guarded, bpy.types.Operator):
    """A box around the object on this frame"""

    bl_idname = "sam2roto.add_box"
    bl_label = "Add Box"
    bl_options = {"REGISTER"}

    x0: FloatProperty(name="Left")
    y0: FloatProperty(name="Top")
    x1: FloatProperty(name="Right")
    y1: FloatProperty(name="Bottom")
    frame: FRAME
    object: OBJECT

    def run(self, context):
        shot = _open_shot(context)
        name = _object_name(shot, self.object)
        source = _source_frame(shot, _scene_frame_arg(self, context))
        x0, x1 = sorted((self.x0, self.x1))
        y0, y1 = sorted((self.y0, self.y1))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise UserError("The box is empty: drag a box around the object.")
        _check_inside(x0, y0, "The box corner")
        _check_inside(x1, y1, "The box corner")
        _send_prompt(shot, name, source, box=[x0, y0, x1, y1])
        return {"FINISHED"}


class SAM2ROTO_OT_add_mask_prompt(_Guarded, bpy.types.Operator):
    """Use a mask you drew as the object's prompt on this frame (replaces that frame's clicks)"""

    bl_idname = "sam2roto.add_mask_prompt"
    bl_label = "Use Mask as Prompt"
    bl_options = {"REGISTER"}

    mask: StringProperty(name="Mask", description="Blender mask (default: the panel's prompt mask)", default="")
    frame: FRAME
    object: OBJECT

    def run(self, context):
        shot = _open_shot(context)
        name = _object_name(shot, self.object)
        scene_frame = _scene_frame_arg(self, context)
        source = _source_frame(shot, scene_frame)
        mask = bpy.data.masks.get(self.mask) if self.mask else shot.prompt_mask
        if mask is None:
            raise UserError(f"There is no mask '{self.mask}'." if self.mask else "Choose the mask to use as a prompt.")
        width, height = SESSION.shot["size"]
        # a file of its own: the core reads it when it gets to the prompt, maybe after the next
        # one was written (while it tracks, or encodes a frame)
        handle, path = tempfile.mkstemp(prefix=f"sam2roto-prompt-{os.getpid()}-", suffix=".png")
        os.close(handle)
        path, area = mask_prompt.write_prompt(mask, context.scene, scene_frame, width, height, path)
        if area == 0:
            _remove_quietly(path)
            raise UserError(f"Mask '{mask.name}' covers nothing on frame {scene_frame}: draw the object's outline "
                            "with closed, filled splines on this frame.")
        # the core has read the image by the time it answers
        _send_prompt(shot, name, source, answered=lambda: _remove_quietly(path), mask=path)
        return {"FINISHED"}


def _remove_quietly(path: str) -> None:
    """A temporary file gone; one that is already gone or locked is left to the system's clean-up."""
    try:
        os.remove(path)
    except OSError:
        pass


class SAM2ROTO_OT_undo_prompt(_Guarded, bpy.types.Operator):
    """Take back the last prompt (click, box or mask)"""

    bl_idname = "sam2roto.undo_prompt"
    bl_label = "Undo Prompt"
    bl_options = {"REGISTER"}

    def run(self, context):
        _open_shot(context)
        SESSION.request("prompt/undo", {}, on_result=_on_frame_answer)
        return {"FINISHED"}


DIRECTIONS = [("FORWARD", "Forward", "From this frame to the end of the shot"),
              ("BACKWARD", "Backward", "From this frame to the start of the shot"),
              ("WHOLE", "Whole Shot", "Forward from the first prompted frame, then backward to the start")]


def _track_finished(result: dict) -> None:
    SESSION.track_id, SESSION.progress = None, None
    progress_end()
    frames = int(result.get("frames", 0))
    SESSION.status = (f"Tracking cancelled: {frames} frames kept" if result.get("cancelled")
                      else f"Tracked {frames} frames")
    refresh_masks(bpy.context.scene)


def _track_failed(error) -> None:
    SESSION.track_id, SESSION.progress = None, None
    progress_end()
    SESSION.status = "Tracking failed"
    SESSION.report_error(error)


class SAM2ROTO_OT_track(_Guarded, bpy.types.Operator):
    """Track the objects through the shot (Esc cancels; tracked frames are kept)"""

    bl_idname = "sam2roto.track"
    bl_label = "Track"
    bl_options = {"REGISTER"}

    direction: EnumProperty(name="Direction", items=DIRECTIONS, default="WHOLE")
    frame: FRAME

    def run(self, context):
        shot = _open_shot(context)
        if SESSION.tracking:
            raise UserError("Tracking is already running: wait for it, or press Esc to cancel it.")
        if not shot.objects:
            raise UserError("Add an object and prompt it before tracking.")
        params = {"direction": {"FORWARD": "forward", "BACKWARD": "backward", "WHOLE": "both"}[self.direction]}
        if self.direction != "WHOLE":
            params["from"] = _source_frame(shot, _scene_frame_arg(self, context))
        SESSION.status = "Tracking..."
        SESSION.progress = (0, 0, 0)
        progress_begin()
        try:
            SESSION.track_id = SESSION.request("track", params, on_result=_track_finished, on_error=_track_failed)
        except rpc.ServiceError:  # not sent: nothing is tracking
            SESSION.status, SESSION.progress = "", None
            progress_end()
            raise
        return {"FINISHED"}

    def invoke(self, context, _event):
        if self.execute(context) != {"FINISHED"}:
            return {"CANCELLED"}
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if not SESSION.tracking:
            return {"FINISHED"}
        if event.type == "ESC" and event.value == "PRESS":
            bpy.ops.sam2roto.cancel_track()
            return {"RUNNING_MODAL"}
        return {"PASS_THROUGH"}  # Blender stays usable while the core tracks


class SAM2ROTO_OT_cancel_track(bpy.types.Operator):
    """Stop tracking; the frames tracked so far are kept"""

    bl_idname = "sam2roto.cancel_track"
    bl_label = "Cancel Tracking"
    bl_options = {"REGISTER"}

    def execute(self, _context):
        if not SESSION.tracking or SESSION.client is None:
            self.report({"WARNING"}, "Nothing is being tracked.")
            return {"CANCELLED"}
        try:
            SESSION.client.cancel(SESSION.track_id)
        except rpc.ServiceError as e:  # (the core stopped: nothing is being tracked any more)
            SESSION.report_error(e)
            return {"CANCELLED"}
        SESSION.status = "Cancelling..."
        return {"FINISHED"}


def _mattes_folder(shot) -> str:
    if shot.export_folder:
        return bpy.path.abspath(shot.export_folder)
    return os.path.join(bpy.path.abspath(shot.folder), "mattes")


class SAM2ROTO_OT_import_results(_Guarded, bpy.types.Operator):
    """Bring the tracked objects into Blender: an animated mask (a layer per object) and the soft
    mattes in the compositor (Set Alpha)"""

    bl_idname = "sam2roto.import_results"
    bl_label = "Import Results"
    bl_options = {"REGISTER"}

    folder: StringProperty(name="Mattes folder", subtype="DIR_PATH", default="",
                           description="Where the core writes mattes and shapes (default: the panel's)")
    shape_tolerance: FloatProperty(name="Key tolerance", min=0.0, options={"SKIP_SAVE"},
                                   description="Pixels (default: the panel's); 0 keys every frame")
    compositor: BoolProperty(name="Compositor", default=True, description="Set up the compositor with the mattes")

    def run(self, context):
        _not_while_tracking("importing")
        shot = _open_shot(context)
        tolerance = (self.shape_tolerance if self.properties.is_property_set("shape_tolerance")
                     else shot.shape_tolerance)
        folder = bpy.path.abspath(self.folder) if self.folder else _mattes_folder(shot)
        scene_name, with_compositor, file = context.scene.name, self.compositor, FILES_OPENED[0]
        params = {"out": folder, "format": "png16", "shapes": True, "shape_tolerance": tolerance, "force": True}
        SESSION.status = "Exporting mattes..."
        SESSION.import_id = SESSION.request(
            "export", params, on_result=lambda r: _import_export(scene_name, r, with_compositor, file),
            on_error=_import_failed)
        return {"FINISHED"}


def _import_failed(error: Exception | str) -> None:
    SESSION.import_id = None
    SESSION.status = "Import failed"
    SESSION.report_error(error)


def _import_export(scene_name: str, result: dict, with_compositor: bool, file: int) -> None:
    """The export's files into the scene: the Mask, the matte images and the compositor nodes;
    only into the .blend that asked (`file`), whose scene still has the shot exported."""
    SESSION.import_id = None
    if FILES_OPENED[0] != file:  # (a scene of the same name in another .blend is another shot)
        _import_failed(f"The mattes are in {result.get('folder')}, but another .blend was opened meanwhile: nothing "
                       "was imported there. Import Results again in the shot's .blend.")
        return
    scene = bpy.data.scenes.get(scene_name)
    shot = None if scene is None else scene.sam2roto
    if shot is None or shot.clip is None or not SESSION.is_open(shot):
        _import_failed(f"The mattes are in {result.get('folder')}, but the scene '{scene_name}' or its clip is gone, "
                       "or it has another shot now: Import Results again.")
        return
    try:
        shapes = result.get("shapes", {})
        mask, kept = shapes_import.import_shapes(shot.clip, shapes, shot.mask.name if shot.mask else None,
                                                 ours=json.loads(shot.imported_layers or "[]"))
        for name in set(json.loads(shot.imported_layers or "[]")) - set(shapes):
            shapes_import.remove_layer(mask, name)  # (an object removed from the shot, or renamed)
        shot.mask, shot.imported_layers = mask, json.dumps(sorted(shapes))
        notes = [f"your layer '{old}' is now '{new}'" for old, new in kept.items()]
        if with_compositor:
            images = {name: compositor.load_matte_sequence(pattern, shot.clip, f"{shot.clip.name} {name} matte")
                      for name, pattern in result.get("mattes", {}).items()}
            active = shot.active()
            frames = int(result.get("frames", 0)) or shot.clip.frame_duration
            notes += compositor.set_up(scene, shot.clip, images, frames, show=active.name if active else None)
        SESSION.status = "; ".join([f"Imported {len(shapes)} objects into mask '{mask.name}'", *notes])
        _undo_step("Import Results")
        if not result.get("complete", True):
            SESSION.report_error("Imported, but tracking is not done: frames not tracked yet have empty mattes, "
                                 "or a correction waits to be tracked from. Track, then Import Results again.")
    except (shapes_import.ShapesError, OSError, KeyError) as e:
        _import_failed(f"Importing the results from {result.get('folder')} failed: {e}")


def _undo_step(name: str) -> None:
    """An undo step for what an answer changed in the scene: it came after the operator had
    ended, so Blender recorded none, and a later Ctrl-Z would take it away with the next edit."""
    windows = bpy.context.window_manager.windows
    try:
        if bpy.context.window is None and windows:  # (a timer runs without a window)
            with bpy.context.temp_override(window=windows[0]):
                bpy.ops.ed.undo_push(message=name)
        else:
            bpy.ops.ed.undo_push(message=name)
    except RuntimeError as e:  # (no undo where there is no window to hold it)
        print(f"SAM 2 Roto: no undo step for {name}: {e}", file=sys.stderr)


class SAM2ROTO_OT_import_shapes(_Guarded, bpy.types.Operator):
    """Import a shapes file (<object>.shapes.json, from Import Results or `sam2roto track --shapes`)
    as a layer of an animated mask of the clip"""

    bl_idname = "sam2roto.import_shapes"
    bl_label = "Import Shapes File"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="Shapes file", subtype="FILE_PATH")
    clip: StringProperty(name="Clip", description="The clip the shapes belong to (default: the editor's)")
    mask: StringProperty(name="Mask", description="Mask to add the layer to (default: '<clip> roto')")
    object: StringProperty(name="Layer", description="Layer name (default: the file's object)")
    filter_glob: StringProperty(default="*.shapes.json", options={"HIDDEN"})

    def run(self, context):
        clip = _clip(context, self.clip)
        path = bpy.path.abspath(self.filepath)
        name = self.object or shapes_import.read_shapes(path).get("object") or "object"
        mask, _ = shapes_import.import_shapes(clip, {name: path}, self.mask or None)
        self.report({"INFO"}, f"Imported '{name}' into mask '{mask.name}'")
        return {"FINISHED"}

    def invoke(self, context, _event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


# -- the masks of the frame on screen ---------------------------------------------------------

_refresh = {"pending": False, "again": False}


def refresh_masks(scene: bpy.types.Scene) -> None:
    """Asks the core for every object's mask on the current frame (one batch in flight at a time)."""
    shot = getattr(scene, "sam2roto", None)
    if shot is None or shot.clip is None or SESSION.client is None or SESSION.shot is None or not shot.objects:
        return
    if not SESSION.is_open(shot):
        return  # another scene's shot is open in the core: this one's is opened by its next action
    if _refresh["pending"]:
        _refresh["again"] = True
        return
    source = footage.source_frame(shot.clip, scene.frame_current)
    if source not in (SESSION.shot.get("frame_numbers") or []):
        for item in shot.objects:
            overlay.show(item.name, source, None, item.colour)
        return
    names = shot.object_names()
    left = {"count": len(names)}

    def done(answer=None):
        if answer is not None:
            SESSION.frame_answer(answer)
        left["count"] -= 1
        if left["count"] == 0:
            _refresh["pending"] = False
            if _refresh["again"]:
                _refresh["again"] = False
                refresh_masks(bpy.context.scene)

    _refresh["pending"] = True
    try:
        for name in names:
            SESSION.request("mask/get", {"object": name, "frame": source}, on_result=done,
                            on_error=lambda e: (done(), SESSION.report_error(e)))
    except rpc.ServiceError as e:  # (the core stopped): the next refresh asks again
        _refresh["pending"] = _refresh["again"] = False
        SESSION.report_error(e)


def show_answer_in_overlay(obj: str, frame: int, mask_path: str | None) -> None:
    """Session listener: an answer for the frame on screen updates that object's overlay."""
    scene = bpy.context.scene
    shot = getattr(scene, "sam2roto", None)
    if shot is None or shot.clip is None or obj not in shot.object_names() or not SESSION.is_open(shot):
        return
    if footage.source_frame(shot.clip, scene.frame_current) == frame:
        overlay.show(obj, frame, mask_path, shot.objects[shot.object_names().index(obj)].colour)


@bpy.app.handlers.persistent
def on_undo(scene, _depsgraph=None):
    """Blender's undo and redo bring the scene back as it was; the core's shot stays as it is
    (its prompts have their own undo). The object list follows the shot again."""
    shot = getattr(scene, "sam2roto", None)
    if shot is None or SESSION.client is None or not SESSION.is_open(shot):
        return
    name = scene.name  # (the scene's data is rebuilt by the next undo: look it up when the answer comes)

    def follow(info):
        again = bpy.data.scenes.get(name)
        if again is not None and SESSION.is_open(again.sam2roto):
            _follow_the_shots_objects(again.sam2roto, info)

    SESSION.request("shot/info", {}, on_result=follow)


@bpy.app.handlers.persistent
def on_frame_change(scene, _depsgraph=None):
    if not SESSION.tracking and not SESSION.opening:
        refresh_masks(scene)


classes = (SAM2ROTO_OT_create_shot, SAM2ROTO_OT_cancel_shot, SAM2ROTO_OT_add_object, SAM2ROTO_OT_remove_object,
           SAM2ROTO_OT_rename_object, SAM2ROTO_OT_add_point,
           SAM2ROTO_OT_add_box, SAM2ROTO_OT_add_mask_prompt, SAM2ROTO_OT_undo_prompt, SAM2ROTO_OT_track,
           SAM2ROTO_OT_cancel_track, SAM2ROTO_OT_import_results, SAM2ROTO_OT_import_shapes)


HANDLERS = (("frame_change_post", on_frame_change), ("undo_post", on_undo), ("redo_post", on_undo),
            ("load_pre", on_file_open), ("load_post", on_file_loaded))


def register():
    SESSION.on_mask.append(show_answer_in_overlay)


def unregister():
    if show_answer_in_overlay in SESSION.on_mask:
        SESSION.on_mask.remove(show_answer_in_overlay)
