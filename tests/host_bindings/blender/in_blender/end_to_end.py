"""Inside Blender, against the real service: create a shot from a clip, objects, clicks, a box,
undo, a drawn mask as a prompt, tracking (cancelled once, then whole), a correction and re-track,
then Import Results (the animated Mask and the compositor's Set Alpha), and a compositor render
of one frame with its alpha. Bad inputs are fed on the way. pytest checks the findings."""

import glob
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bpy
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def overlay_pixels(ext, obj: str) -> int:
    image = bpy.data.images.get(ext.overlay.image_name(obj))
    if image is None:
        return 0
    pixels = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(pixels)
    return int((pixels[3::4] > 0).sum())


def answer(session, obj: str, frame: int) -> dict:
    return {"mask": session.masks.get((obj, frame)), "score": session.scores.get((obj, frame))}


def draw_square_mask(name: str, clip, x0, y0, x1, y1, ext) -> bpy.types.Mask:
    """A mask as an artist draws one: a closed polygon (vector handles) in the clip's mask space."""
    mask = bpy.data.masks.new(name)
    spline = mask.layers.new(name="drawn").splines.new()
    spline.points.add(3)
    width, height = clip.size
    for point, (x, y) in zip(spline.points, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], strict=True):
        point.co = ext.coordinates.plate_to_mask(x, y, width, height)
        point.handle_type = "VECTOR"
    spline.use_cyclic = True
    return mask


def bad_inputs(ext, ops, clip) -> dict:
    e = harness.operator_error
    return {
        "outside_plate": e(lambda: ops.add_point(object="ball", frame=1, x=400, y=10)),
        "outside_shot": e(lambda: ops.add_point(object="ball", frame=50, x=10, y=10)),
        "unknown_object": e(lambda: ops.add_point(object="kite", frame=1, x=10, y=10)),
        "empty_box": e(lambda: ops.add_box(object="square", frame=1, x0=10, y0=10, x1=10, y1=40)),
        "duplicate_object": e(lambda: ops.add_object(name="ball")),
        "empty_mask": e(lambda: ops.add_mask_prompt(object="ball", frame=1,
                                                    mask=draw_square_mask("nothing", clip, 5, 5, 5, 5, ext).name)),
    }


class Stub:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def region(kind: str, x: int, y: int, width: int, height: int) -> Stub:
    """A region as the tool sees it; its view2d maps the region to the frame's 0..1 (zoom 1, no pan)."""
    view2d = Stub(region_to_view=lambda rx, ry: (rx / width, ry / height))
    return Stub(type=kind, x=x, y=y, width=width, height=height, view2d=view2d)


def click(tool, context, x: int, y: int, release_at: tuple[int, int] | None = None) -> list[str]:
    """A press and release at window point (x, y) through the prompt tool's modal(); what it returned."""
    main = context.region
    returned = []
    for value, (wx, wy) in (("PRESS", (x, y)), ("RELEASE", release_at or (x, y))):
        event = Stub(type="LEFTMOUSE", value=value, ctrl=False, oskey=False, shift=False, mouse_x=wx, mouse_y=wy,
                     mouse_region_x=wx - main.x, mouse_region_y=wy - main.y)
        returned.append(sorted(tool.modal(context, event))[0])
    return returned


def prompt_tool(ext, ops, clip, scene) -> dict:
    """The click tool's modal() on a stand-in window: a 320x240 main region at (100, 50), the
    sidebar over its right part. (No window in background mode; the tool's own code runs.)"""
    cls = ext.prompt_tool.SAM2ROTO_OT_prompt_tool

    class Tool:  # the operator's methods on a plain object (Blender makes operators itself)
        modal, _prompt, _call, _finish = cls.modal, cls._prompt, cls._call, cls._finish

        def __init__(self):
            self._press, self.reports = None, []

        def report(self, _kind, message):
            self.reports.append(message)

    main, sidebar = region("WINDOW", 100, 50, 320, 240), region("UI", 370, 50, 50, 240)
    context = Stub(area=Stub(regions=[main, sidebar], header_text_set=lambda _text: None), region=main,
                   space_data=Stub(clip=clip), scene=scene)
    tool, session = Tool(), ext.session.SESSION
    # a drag that ends below the plate: a box the add-on refuses; the tool says so and goes on
    found = {"beside_the_plate": click(tool, context, 100 + 10, 50 + 5, release_at=(100 + 200, 50 - 30))}
    found["beside_the_plate_reports"] = list(tool.reports)
    found["on_the_sidebar"] = click(tool, context, 400, 150)  # a button there: not a prompt
    found["sent_for_the_sidebar"] = session.busy
    found["on_the_clip"] = click(tool, context, 100 + 60, 50 + 240 - 120)  # plate (60, 120)
    found["sent_for_the_clip"] = session.busy
    harness.pump(ext)
    found["clicked"] = session.masks.get((scene.sam2roto.active().name, 1001)) is not None
    redo = Stub(type="Z", value="PRESS", ctrl=True, oskey=False, shift=True, mouse_x=0, mouse_y=0)
    found["ctrl_shift_z"] = sorted(tool.modal(context, redo))[0]  # Blender's redo: not an undo of the click
    found["redo_sent"] = session.busy
    undo = Stub(type="Z", value="PRESS", ctrl=True, oskey=False, shift=False, mouse_x=0, mouse_y=0)
    found["ctrl_z"] = sorted(tool.modal(context, undo))[0]  # takes the click back
    found["undo_sent"] = session.busy
    harness.pump(ext)
    # the clip shown stabilised: clicks would miss the plate's pixels; the tool does not start
    clip.tracking.stabilization.use_2d_stabilization = True
    context.space_data = Stub(clip=clip, show_stable=True, clip_user=Stub(use_render_undistorted=False))
    found["stabilised"] = [sorted(cls.invoke(tool, context, None))[0], tool.reports[-1]]
    clip.tracking.stabilization.use_2d_stabilization = False
    return found


def render_alpha(scene, frame: int, path: str) -> str:
    """A compositor render of `frame` to a 16-bit RGBA PNG (Standard view: pixels unshaped)."""
    scene.view_settings.view_transform = "Standard"
    settings = scene.render.image_settings
    settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGBA", "16"
    scene.frame_set(frame)
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
    return path


def main(args):
    ext = harness.enable_extension(args)
    session, ops, scene = ext.session.SESSION, bpy.ops.sam2roto, bpy.context.scene
    clip = bpy.data.movieclips.load(args["clip"])
    found = {"errors": {}}
    found["errors"]["no_shot"] = harness.operator_error(lambda: ops.add_point(x=10, y=10))
    prefs = bpy.context.preferences.addons[harness.MODULE].preferences
    prefs.core_env, core_env = args["shot"] + "-no-such-env", prefs.core_env
    found["errors"]["no_core"] = harness.operator_error(lambda: ops.create_shot(clip=clip.name, folder=args["shot"]))
    prefs.core_env = core_env
    started = time.monotonic()
    assert ops.create_shot(clip=clip.name, folder=args["shot"], checkpoint=args["checkpoint"],
                           model=args["model"], input_size=args["input_size"]) == {"FINISHED"}
    found["create_seconds"] = round(time.monotonic() - started, 2)
    found["shot"] = {k: session.shot[k] for k in ("frames", "size", "source", "image_size")}
    found["scene_range"] = [scene.frame_start, scene.frame_end]
    ops.add_object(name="ball")
    ops.add_object(name="square", colour=(0.1, 0.9, 0.2))
    found["objects"] = [(o.name, [round(c, 2) for c in o.colour]) for o in scene.sam2roto.objects]
    ops.rename_object(name="square", new_name="box")
    found["renamed"] = {"blender": scene.sam2roto.object_names(),
                        "core": [o["object"] for o in session.call("shot/info", {})["objects"]]}
    found["errors"]["rename_taken"] = harness.operator_error(lambda: ops.rename_object(name="box", new_name="ball"))
    ops.rename_object(name="box", new_name="square")

    # clicks, a negative click and a box on the first frame; the overlay shows each answer
    scene.frame_set(1)
    started = time.monotonic()
    ops.add_point(object="ball", frame=1, x=60, y=120)
    found["prompt_returned_in"] = round(time.monotonic() - started, 3)
    harness.pump(ext)
    found["first_click"] = answer(session, "ball", 1001)
    # the service rewrites a frame's mask file on each prompt: keep this one as the overlay saw it
    found["first_click"]["copy"] = shutil.copy(found["first_click"]["mask"], args["shot"] + "-first-click.png")
    found["first_click_overlay"] = overlay_pixels(ext, "ball")
    ops.add_point(object="ball", frame=1, x=250, y=200, negative=True)
    ops.add_box(object="square", frame=1, x0=205, y0=15, x1=275, y1=85)
    harness.pump(ext)
    found["box"] = answer(session, "square", 1001)
    found["errors"].update(bad_inputs(ext, ops, clip))
    # Ctrl-Z: takes back the box (the last prompt), then the box again
    ops.undo_prompt()
    harness.pump(ext)
    found["after_undo"] = answer(session, "square", 1001)
    ops.add_box(object="square", frame=1, x0=205, y0=15, x1=275, y1=85)
    harness.pump(ext)
    found["prompt_tool"] = prompt_tool(ext, ops, clip, scene)
    found["drawn_on_frame_1"] = ext.overlay.drawn_objects(scene)

    # tracking runs behind Blender's back: the operator returns at once, the timer reads progress
    started = time.monotonic()
    assert ops.track(direction="WHOLE") == {"FINISHED"}
    found["track_returned_in"] = round(time.monotonic() - started, 3)
    found["timer_registered"] = bpy.app.timers.is_registered(ext.session._poll_timer)
    found["errors"]["add_while_tracking"] = harness.operator_error(lambda: ops.add_object(name="kite"))
    scene.frame_set(2)  # scrubbing while tracking runs: the overlays of frame 1 are not drawn on 2
    found["drawn_on_frame_2_while_tracking"] = ext.overlay.drawn_objects(scene)
    while session.progress is None or session.progress[0] < 1:
        session.client.poll(wait=0.05)
    assert ops.cancel_track() == {"FINISHED"}
    harness.pump(ext)
    found["cancelled_status"] = session.status
    # importing what a cancelled track left says that tracking is not done
    ops.import_results(folder=args["export"] + "-early", shape_tolerance=0.0)
    harness.pump(ext)
    found["early_import"] = {"status": session.status, "error": session.last_error}
    session.last_error = ""
    # a mask request that cannot be sent (the core went away) does not stop later refreshes
    request, failed = session.request, []

    def broken(*_args, **_kwargs):
        failed.append(1)
        raise ext.client.ServiceError("the pipe broke")

    session.request = broken
    scene.frame_set(3)
    found["refresh_failed"] = {"tried": len(failed), "error": session.last_error}
    found["errors"]["track_not_sent"] = harness.operator_error(lambda: ops.track(direction="WHOLE"))
    found["track_not_sent"] = {"status": session.status, "progress": session.progress, "tracking": session.tracking}
    session.request = request
    session.last_error = ""
    scene.frame_set(4)
    found["refresh_after_failure_sent"] = session.busy
    harness.pump(ext)
    found["refreshed_masks"] = {o: (o, 1004) in session.masks for o in ("ball", "square")}  # (answered)
    found["errors"]["cancel_idle"] = "" if ops.cancel_track() == {"CANCELLED"} else "cancel when idle succeeded"
    progress = []
    ops.track(direction="WHOLE")
    # two masks drawn while the core tracks: it reads them after the track, each its own
    ops.add_mask_prompt(object="ball", frame=3, mask=draw_square_mask("drawn 3", clip, 50, 85, 135, 160, ext).name)
    ops.add_mask_prompt(object="ball", frame=4, mask=draw_square_mask("drawn 4", clip, 150, 100, 230, 180, ext).name)
    while session.tracking:
        session.client.poll(wait=0.05)
        if session.progress and (not progress or progress[-1] != list(session.progress)):
            progress.append([*session.progress, ext.ui.tracking_label(scene)])
    found["whole_status"], found["whole_progress"] = session.status, progress
    harness.pump(ext)
    # (kept as answered: later prompts on these frames rewrite their files)
    found["mask_prompt_answers"] = [shutil.copy(answer(session, "ball", f)["mask"], args["shot"] + f"-answer-{f}.png")
                                    for f in (1003, 1004)]

    # a correction on frame 3 with a drawn mask, another with a click, re-tracked forward from there
    drawn = draw_square_mask("drawn ball", clip, 50, 85, 135, 160, ext)
    ops.add_mask_prompt(object="ball", frame=3, mask=drawn.name)
    harness.pump(ext)
    found["mask_prompt"] = answer(session, "ball", 1003)
    # the prompt images (the empty mask's and this one) are gone once read
    found["prompt_images_left"] = glob.glob(os.path.join(tempfile.gettempdir(), f"sam2roto-prompt-{os.getpid()}-*"))
    ops.add_point(object="square", frame=3, x=240, y=50)
    harness.pump(ext)
    ops.track(direction="FORWARD", frame=3)
    harness.pump(ext)
    found["forward_status"] = session.status
    scene.frame_set(2)
    harness.pump(ext)  # the frame change asked for the masks on screen
    found["frame_change_masks"] = {o: answer(session, o, 1002)["mask"] for o in ("ball", "square")}

    # results in Blender: the Mask (a layer per object, keyed) and the compositor
    ops.import_results(folder=args["export"], shape_tolerance=0.0)
    harness.pump(ext)
    mask = scene.sam2roto.mask
    assert mask is not None, session.last_error
    fcurves = ext.animation.fcurves_of(mask, "", 0)
    keys = {}
    for layer in mask.layers:
        prefix = f'layers["{layer.name}"]'
        keys[layer.name] = {
            "co": sorted({int(k.co[0]) for fc in fcurves if fc.data_path.startswith(prefix)
                          and fc.data_path.endswith(".co") for k in fc.keyframe_points}),
            "hidden": sorted({int(k.co[0]) for fc in fcurves if fc.data_path == f"{prefix}.hide_render"
                              for k in fc.keyframe_points if k.co[1] > 0.5}),
            "splines": len(layer.splines)}
    for name, layer_keys in keys.items():  # frames with a shape key, or where the layer is hidden
        hidden = []
        for frame in range(scene.frame_start, scene.frame_end + 1):
            scene.frame_set(frame)
            if mask.layers[name].hide_render:
                hidden.append(frame)
        layer_keys["covered"] = sorted(set(layer_keys["co"]) | set(hidden))
    found["mask"] = {"name": mask.name, "layers": keys}
    active = scene.sam2roto.active()
    found["composited_object"] = active.name if active else None
    found["images"] = sorted(i.name for i in bpy.data.images if i.name.endswith(" matte"))
    found["render"] = render_alpha(scene, 2, os.path.join(args["export"], "render.0002.png"))
    found["status"], found["last_error"] = session.status, session.last_error
    # Blender's undo takes the scene back to before the objects were added; the core keeps them
    # (and their clicks): the list follows the shot again
    before = scene.sam2roto.object_names()
    scene.sam2roto.objects.clear()  # what such an undo leaves
    ext.operators.on_undo(scene)
    harness.pump(ext)
    found["undo"] = {"before": before, "after": scene.sam2roto.object_names(),
                     "handlers": [ext.operators.on_undo in bpy.app.handlers.undo_post,
                                  ext.operators.on_undo in bpy.app.handlers.redo_post]}
    # Import Results again after a rename and a removal: the mask follows the shot's objects,
    # and a layer drawn by hand in it stays
    mask.layers.new(name="drawn by hand")
    ops.rename_object(name="square", new_name="box")
    ops.remove_object(name="ball")
    ops.import_results(folder=args["export"], shape_tolerance=0.0)
    harness.pump(ext)
    found["imported_again"] = {"layers": sorted(layer.name for layer in mask.layers), "animated": sorted(
        {fc.data_path.split("]")[0] for fc in ext.animation.fcurves_of(mask, "", 0)}), "error": session.last_error}
    found["unsaved"] = unsaved_blend_defaults(ext, ops, args)
    found["saved"] = saved_blend_keeps_shot_folders_relative(ext, ops, args)
    found["first_use"] = first_use_downloads_the_weights(ext, ops, args)
    return found


def unsaved_blend_defaults(ext, ops, args) -> dict:
    """A .blend never saved: the shot goes beside the footage, and Import Results' default
    mattes folder (inside it) is allowed. Create Shot again (another scene) carries on with it."""
    session = ext.session.SESSION
    assert bpy.data.filepath == ""
    footage = shutil.copytree(os.path.dirname(args["clip"]), args["shot"] + "-footage")  # (this run's own)
    clip = bpy.data.movieclips.load(os.path.join(footage, os.path.basename(args["clip"])))
    create = dict(clip=clip.name, checkpoint=args["checkpoint"], model=args["model"], input_size=args["input_size"])
    roto, first, other = bpy.context.scene, bpy.data.scenes.new("unsaved"), bpy.data.scenes.new("another scene")
    first.sam2roto.export_folder = os.path.dirname(args["export"])  # a mattes folder of an earlier shot
    with bpy.context.temp_override(scene=first):
        ops.create_shot(**create)
        found_export_folder = first.sam2roto.export_folder
        ops.add_object(name="ball", colour=(0.2, 0.4, 0.6))
        ops.add_point(object="ball", frame=1, x=60, y=120)
        harness.pump(ext)
        session.last_error = ""
        ops.import_results(shape_tolerance=0.0)
        harness.pump(ext)
    found = {"footage": footage, "shot": session.shot["shot"], "error": session.last_error, "status": session.status,
             "export_folder": found_export_folder}
    with bpy.context.temp_override(scene=other):
        found["created_again"] = sorted(ops.create_shot(**create))
        found["objects_again"] = [(o.name, [round(c, 2) for c in o.colour]) for o in other.sam2roto.objects]
        found["prompted_again"] = session.call("shot/info", {})["objects"][0]["prompted_frames"]
        other.frame_set(2)
        other.frame_set(1)  # its "ball" overlay: this shot's mask
        harness.pump(ext)
        found["drawn_in_the_other_scene"] = ext.overlay.drawn_objects(other)
    # the roto scene's shot has a "ball" too, but is not the one open: nothing of the other's shows
    # there, and its frame changes ask the core nothing until one of its actions opens its shot
    session.last_error = ""
    roto.frame_set(2)
    roto.frame_set(1)
    found["roto_scene"] = {"asked": session.busy, "drawn": ext.overlay.drawn_objects(roto),
                            "error": session.last_error}
    first_clip = bpy.data.movieclips[0]  # the end-to-end's clip, in its own folder
    found["other_footage"] = harness.operator_error(lambda: ops.create_shot(**dict(
        create, clip=first_clip.name, folder=found["shot"])))
    return found


def saved_blend_keeps_shot_folders_relative(ext, ops, args) -> dict:
    """The first save makes the shot folders relative to the .blend (here reached through a
    link, as studio projects often are), and a new shot's folder is kept so; Save As
    elsewhere remaps them (as Blender remaps its own paths); a Save Copy or a save that fails
    leaves the open .blend's as they were, and an undo to before the Save As brings back
    paths that point where they did."""
    project = args["shot"] + "-project"
    os.makedirs(os.path.join(project, "v2"))
    link = args["shot"] + "-project-link"
    os.symlink(project, link)
    unsaved = bpy.data.scenes["unsaved"].sam2roto  # (made while the .blend was not saved)
    unsaved_before = os.path.normpath(bpy.path.abspath(unsaved.folder))
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(link, "roto.blend"))
    ext.blend_paths.note_where_opened()  # (as if this .blend had been opened from there)
    found = {"first_save": {"folder": unsaved.folder, "same": os.path.normpath(bpy.path.abspath(unsaved.folder))
                            == unsaved_before}}
    scene = bpy.data.scenes.new("saved")
    with bpy.context.temp_override(scene=scene):
        ops.create_shot(clip=bpy.data.movieclips[0].name, checkpoint=args["checkpoint"], model=args["model"],
                        input_size=args["input_size"])
    shot = scene.sam2roto
    shot.export_folder = "//mattes/"  # (as the file browser leaves it, Relative Path on)

    def paths():
        return {"folder": shot.folder, "export_folder": shot.export_folder,
                "absolute": [os.path.normpath(bpy.path.abspath(p)) for p in (shot.folder, shot.export_folder)]}

    found.update(link=link, new=paths())
    before_save_as = (shot.folder, shot.export_folder, shot.paths_base)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(link, "v2", "roto.blend"))
    found["save_as"] = paths()
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(link, "copy.blend"), copy=True)
    found["save_copy"] = paths()
    found["failed_save"] = harness.operator_error(
        lambda: bpy.ops.wm.save_as_mainfile(filepath=os.path.join(link, "no such folder", "roto.blend")))
    found["after_failed_save"] = paths()
    with bpy.data.libraries.load(os.path.join(link, "copy.blend")) as (_, into):
        into.scenes = ["saved"]
    found["in_the_copy"] = {"folder": into.scenes[0].sam2roto.folder,
                            "export_folder": into.scenes[0].sam2roto.export_folder}
    # what an undo to before the Save As brings back (its handler runs after it)
    shot.folder, shot.export_folder, shot.paths_base = before_save_as
    ext.blend_paths.rebase_after_undo()
    found["undone"] = paths()
    # a folder set in the panel of a scene made after the Save As is relative to where it is now
    later = bpy.data.scenes.new("after the save as").sam2roto
    later.export_folder = "//mattes/"
    ext.blend_paths.rebase_after_undo()
    found["set_after_save_as"] = os.path.normpath(bpy.path.abspath(later.export_folder))
    return found


class SlowWeights:
    """Serves a model file slowly, a chunk at a time, as a far server does: a download the
    artist has time to watch, and to cancel."""

    def __init__(self, size: int):
        self.cut = False  # hang up in the middle of the download
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                try:
                    for _ in range(0, size, 1 << 16):
                        if server.cut:
                            return
                        self.wfile.write(bytes(1 << 16))
                        time.sleep(0.05)
                except OSError:  # (the core hung up: cancelled)
                    pass

            def log_message(self, *_args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def first_use_downloads_the_weights(ext, ops, args) -> dict:
    """Create Shot with a model whose weights are not here yet: the core downloads them, the
    panel's status says how far, the shot's actions wait, and Cancel stops it. So with a
    shot made elsewhere whose model this computer lacks, opened by an action on it."""
    session = ext.session.SESSION
    session.stop()  # (a core started anew reads where the weights come from)
    server = SlowWeights(156_008_466)  # sam2.1_hiera_tiny's size
    weights_dir = args["shot"] + "-weights"
    os.environ.update(SAM2ROTO_WEIGHTS_BASE_URL=server.url, SAM2ROTO_WEIGHTS_DIR=weights_dir, no_proxy="*")
    scene, folder = bpy.data.scenes.new("first use"), args["shot"] + "-first-use"

    def until_downloading(request=None):
        deadline = time.monotonic() + 120
        while not session.status.startswith("Downloading") and not (request and request.done):
            assert time.monotonic() < deadline, session.status
            session.client.poll(wait=0.05)
        return session.status

    try:
        with bpy.context.temp_override(scene=scene):
            request = ext.operators.make_shot(bpy.context, bpy.data.movieclips[0].name, folder, args["model"],
                                              input_size=args["input_size"])
            found = {"opening": session.opening, "status": until_downloading(request),
                     "refused": harness.operator_error(lambda: ops.add_object(name="kite"))}
            ops.cancel_shot()
            harness.pump(ext)
        part = os.path.join(weights_dir, f"{args['model']}.pt.part")
        found.update(cancelled=request.cancelled, error=request.error, opening_after=session.opening,
                     status_after=session.status, shot_made=os.path.exists(os.path.join(folder, "shot.json")),
                     scene_has_shot=scene.sam2roto.clip is not None,
                     part_bytes=os.path.getsize(part) if os.path.exists(part) else 0)

        # the shot of the "saved" scene, as if made on a computer that had the official weights
        saved = bpy.data.scenes["saved"]
        manifest = os.path.join(bpy.path.abspath(saved.sam2roto.folder), "shot.json")
        with open(manifest) as f:
            data = json.load(f)
        data["model"]["checkpoint"] = None
        with open(manifest, "w") as f:
            json.dump(data, f)
        with bpy.context.temp_override(scene=saved):
            found["open"] = {"refused": harness.operator_error(lambda: ops.add_object(name="kite")),
                             "opening": session.opening, "status": until_downloading()}
            ops.cancel_shot()
            harness.pump(ext)
        found["open"].update(opening_after=session.opening, status_after=session.status)
        # the download breaks off: the artist is told (no operator waits for this opening)
        session.last_error = ""
        with bpy.context.temp_override(scene=saved):
            harness.operator_error(lambda: ops.add_object(name="kite"))
            until_downloading()
            server.cut = True
            harness.pump(ext)
        server.cut = False
        found["broken_off"] = {"error": session.last_error, "opening": session.opening}
        # the core stops while it downloads: the artist is told, and nothing waits on it any more
        session.last_error = ""
        with bpy.context.temp_override(scene=saved):
            harness.operator_error(lambda: ops.add_object(name="kite"))
            until_downloading()
            session.client._proc.kill()
            harness.pump(ext)
        found["core_stopped"] = {"error": session.last_error, "opening": session.opening,
                                 "client": session.client is not None}
    finally:
        server.close()
    return found


harness.run(main)
