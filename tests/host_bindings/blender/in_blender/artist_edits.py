"""Inside Blender, against the real service: what the artist did to the scene survives Import
Results and what follows it. The artist's edits: a Mask renamed, a layer drawn under an
object's name, a compositor of their own, a render scale, a clip with a frame offset, a Ctrl-Z
after the import; then a scene renamed while the export runs, an export that fails, and the
project folder (the .blend, its plates and shot) moved. pytest checks the findings."""

import io
import os
import shutil
import sys
import time

import bpy

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

FIRST = 1001


def import_results(ext, ops, **kw) -> dict:
    ops.import_results(shape_tolerance=0.0, **kw)
    harness.pump(ext)
    session = ext.session.SESSION
    found = {"status": session.status, "error": session.last_error}
    session.last_error = ""
    return found


def artists_compositor(scene):
    """A compositor of the artist's: Render Layers -> Blur -> output."""
    if harness_blender_5():
        tree = bpy.data.node_groups.new("artist's comp", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        output = tree.nodes.new("NodeGroupOutput")
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        output = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
    layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None)
    layers = layers or tree.nodes.new("CompositorNodeRLayers")
    blur = tree.nodes.new("CompositorNodeBlur")
    blur.name = "artist blur"
    tree.links.new(layers.outputs["Image"], blur.inputs["Image"])
    tree.links.new(blur.outputs["Image"], output.inputs[0])
    return tree, output


def harness_blender_5() -> bool:
    return bpy.app.version >= (5, 0, 0)


def feeds(tree, node) -> list[str]:
    return sorted(link.from_node.name for link in tree.links if link.to_node == node)


OTHER_VERSION_SERVICE = """
import json, sys
def read():
    length = None
    while (line := sys.stdin.buffer.readline().strip()):
        name, _, value = line.decode().partition(":")
        length = int(value) if name.lower() == "content-length" else length
    return json.loads(sys.stdin.buffer.read(length)) if length else None
def send(message):
    body = json.dumps(message).encode()
    sys.stdout.buffer.write(b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)
    sys.stdout.buffer.flush()
while (message := read()) is not None:
    method, rid = message.get("method"), message.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {"name": "sam2roto", "protocol": 0}})
    elif rid is not None:
        send({"jsonrpc": "2.0", "id": rid, "result": None} if method == "shutdown" else
             {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no such method " + method}})
    if method == "shutdown":
        break
"""


def other_version_core(folder: str) -> str:
    """A core environment folder whose python runs a service speaking protocol 0."""
    os.makedirs(os.path.join(folder, "bin"))
    with open(os.path.join(folder, "service.py"), "w", encoding="utf-8") as f:
        f.write(OTHER_VERSION_SERVICE)
    python = os.path.join(folder, "bin", "python")
    with open(python, "w", encoding="utf-8") as f:
        f.write(f'#!/bin/sh\nexec "{sys.executable}" "{folder}/service.py"\n')
    os.chmod(python, 0o755)
    return folder


def main(args):
    ext = harness.enable_extension(args)
    session, ops, scene = ext.session.SESSION, bpy.ops.sam2roto, bpy.context.scene
    project = args["project"]
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(project, "roto.blend"))
    clip = bpy.data.movieclips.load(os.path.join(project, "plates", f"plate.{FIRST}.png"))
    clip.filepath = f"//plates/plate.{FIRST}.png"
    clip.frame_start, clip.frame_offset = FIRST, 2  # (footage frame 1001 shows on scene frame 999)
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 1920, 1080, 50
    tree, output = artists_compositor(scene)
    assert ops.create_shot(clip=clip.name, checkpoint=args["checkpoint"], model=args["model"],
                           input_size=args["input_size"]) == {"FINISHED"}  # (the shot: //sam2roto/...)
    harness.pump(ext)
    ops.add_object(name="ball")
    ops.add_point(object="ball", frame=ext.footage.scene_frame(clip, FIRST), x=60, y=120)
    harness.pump(ext)
    ops.track(direction="WHOLE")
    harness.pump(ext)
    found = {"scene_range": [scene.frame_start, scene.frame_end]}
    bpy.ops.ed.undo_push(message="tracked")  # (the imports come after this undo step)

    # a layer the artist drew under the object's name, in the Mask the import will use
    drawn = bpy.data.masks.new(f"{clip.name} roto")
    spline = drawn.layers.new(name="ball").splines.new()
    spline.points.add(3)
    found["first_import"] = import_results(ext, ops)
    mask = scene.sam2roto.mask
    found["mask"] = {"same": mask == drawn, "layers": sorted(layer.name for layer in mask.layers),
                     "drawn_points": [len(s.points) for s in mask.layers["ball (drawn)"].splines],
                     "range": [mask.frame_start, mask.frame_end]}
    fcurves = ext.animation.fcurves_of(mask, "", 0)
    found["mask"]["keyed"] = sorted({int(k.co[0]) for fc in fcurves if fc.data_path.startswith('layers["ball"]')
                                     for k in fc.keyframe_points})
    found["matte_images"] = sorted(image.filepath for image in bpy.data.images if image.name.endswith(" matte"))
    found["compositor"] = {"output_fed_by": feeds(tree, output),
                           "viewer_fed_by": feeds(tree, tree.nodes.get("sam2roto viewer")),
                           "resolution": [scene.render.resolution_x, scene.render.resolution_y,
                                          scene.render.resolution_percentage]}

    # the artist renames the Mask: the next import updates it, no second Mask appears
    mask.name = "hero roto"
    found["renamed_mask"] = import_results(ext, ops)
    found["renamed_mask"]["masks"] = sorted(m.name for m in bpy.data.masks)
    found["renamed_mask"]["layers"] = sorted(layer.name for layer in bpy.data.masks["hero roto"].layers)

    # a later edit undone takes back that edit only, not the import before it
    scene.frame_end = scene.frame_end - 1
    bpy.ops.ed.undo_push(message="the artist's edit")
    bpy.ops.ed.undo()
    scene = bpy.context.scene
    found["undone"] = {"mask": scene.sam2roto.mask.name if scene.sam2roto.mask else None,
                       "masks": sorted(m.name for m in bpy.data.masks), "frame_end": scene.frame_end,
                       "matte_nodes": sorted(n.name for n in ext.compositor._tree(scene).nodes
                                             if n.name.startswith("sam2roto"))}

    # the scene renamed while the export runs (object bookkeeping waits: it would freeze Blender
    # behind the export); an export that fails
    ops.import_results(shape_tolerance=0.0)
    found["rename_while_importing"] = harness.operator_error(
        lambda: ops.rename_object(name="ball", new_name="sphere"))
    scene.name = "shot_010"
    harness.pump(ext)
    found["scene_renamed"] = {"status": session.status, "error": session.last_error}
    session.last_error = ""
    not_a_folder = os.path.join(project, "a file")
    open(not_a_folder, "w").close()
    found["export_failed"] = import_results(ext, ops, folder=os.path.join(not_a_folder, "mattes"))

    # another .blend opened while an import's export runs (here the same file again, as saved):
    # the answer is not applied to it
    bpy.ops.wm.save_mainfile()
    layers = sorted(layer.name for layer in bpy.context.scene.sam2roto.mask.layers)
    ops.import_results(shape_tolerance=0.0)
    bpy.ops.wm.open_mainfile(filepath=os.path.join(project, "roto.blend"))
    harness.pump(ext)
    shot_folder = bpy.path.abspath(bpy.context.scene.sam2roto.folder)
    found["other_file"] = {"error": session.last_error, "status": session.status,
                           "kept": sorted(layer.name for layer in bpy.context.scene.sam2roto.mask.layers) == layers,
                           # (the core let go of the closing file's shot: others may open it)
                           "shot_locked": os.path.exists(os.path.join(shot_folder, "lock")),
                           "core_running": session.client is not None and session.client.alive}
    session.last_error = ""

    # the project moved (Blender closed first): the shot opens on the plates beside it
    bpy.ops.wm.save_mainfile()
    session.stop()
    moved = project + " moved"
    shutil.move(project, moved)
    bpy.ops.wm.open_mainfile(filepath=os.path.join(moved, "roto.blend"))
    # a background Blender (a render farm's, a script's) starts no core with the file; an
    # interactive one opens the shot in the background (as on_file_loaded does): the first
    # click right after waits for it and is answered
    scene, clip = bpy.context.scene, bpy.data.movieclips[0]
    with_blend = {"handler": ext.operators.on_file_loaded in bpy.app.handlers.load_post,
                  "started_in_background_mode": session.client is not None}
    started = time.monotonic()
    with_blend["asked"] = ext.operators.open_with_blend(scene)
    with_blend.update(seconds=time.monotonic() - started, open_at_once=session.shot is not None,
                      opening=session.opening)
    ops.add_point(object="ball", frame=ext.footage.scene_frame(clip, FIRST + 1), x=70, y=120)
    harness.pump(ext)
    found["moved"] = {"source": session.shot["source"], "error": session.last_error,
                      "answered": session.masks.get(("ball", FIRST + 1)) is not None,
                      "mattes": [bpy.path.abspath(image.filepath) for image in bpy.data.images
                                 if image.name.endswith(" matte")]}

    # opened again: the masks of the frame on screen show without a click; with the preference
    # off nothing starts (saved first, on a tracked frame: the shot's folder still the one
    # beside the moved .blend)
    bpy.context.scene.frame_current = ext.footage.scene_frame(clip, FIRST + 2)
    bpy.ops.wm.save_mainfile()
    found["moved"]["folder_saved"] = bpy.path.abspath(bpy.context.scene.sam2roto.folder)
    session.stop()
    bpy.ops.wm.open_mainfile(filepath=os.path.join(moved, "roto.blend"))
    scene = bpy.context.scene
    prefs = bpy.context.preferences.addons[harness.MODULE].preferences
    prefs.open_with_blend = False
    with_blend["asked_when_off"] = ext.operators.open_with_blend(scene)
    with_blend["started_when_off"] = session.client is not None
    prefs.open_with_blend = True
    ext.operators.open_with_blend(scene)
    harness.pump(ext)
    shown = ext.overlay._shown.get("ball")
    with_blend.update(status=session.status, error=session.last_error, current=[
        ext.footage.source_frame(scene.sam2roto.clip, scene.frame_current), shown],
        overlay_image=ext.overlay.image_name("ball") in bpy.data.images)
    # a core of another version (a stand-in that speaks protocol 0): reported, stopped, no shot
    session.stop()
    prefs.core_env = other_version_core(os.path.join(moved, "old core"))
    ext.operators.open_with_blend(scene)
    harness.pump(ext)
    with_blend["other_version"] = {"error": session.last_error, "running": session.client is not None,
                                   "shot": session.shot is not None}
    prefs.core_env, session.last_error = args["core_env"], ""
    found["with_blend"] = with_blend
    scene, clip = bpy.context.scene, bpy.data.movieclips[0]

    # the core stops while it tracks, a prompt waiting behind the track: the artist is told once
    ops.track(direction="WHOLE")  # (from the correction just made)
    ops.add_point(object="ball", frame=ext.footage.scene_frame(clip, FIRST + 2), x=90, y=120)
    told, sys.stderr = sys.stderr, io.StringIO()
    try:
        session.client._proc.kill()
        harness.pump(ext)
    finally:
        told, sys.stderr = sys.stderr.getvalue(), told
    found["stopped"] = {"told": told.count("The SAM 2 core stopped"), "tracking": session.tracking}

    # the clip deleted: the next action says what became of the shot
    bpy.data.movieclips.remove(clip)
    found["clip_deleted"] = harness.operator_error(lambda: ops.add_point(object="ball", frame=FIRST, x=70, y=120))

    # a sequence with a frame missing (a failed render): the shot is made, the frame before
    # standing in, and the artist told which
    gap = os.path.join(moved, "gap")
    shutil.copytree(os.path.join(moved, "plates"), gap)
    os.remove(os.path.join(gap, f"plate.{FIRST + 1}.png"))
    clip = bpy.data.movieclips.load(os.path.join(gap, f"plate.{FIRST}.png"))
    session.last_error = ""
    ops.create_shot(clip=clip.name, folder=os.path.join(moved, "gap.shot"), checkpoint=args["checkpoint"],
                    model=args["model"], input_size=args["input_size"])
    harness.pump(ext)
    found["gap"] = {"status": session.status, "error": session.last_error}

    # a clip opened from a file in the middle of its sequence: the files before it fall on
    # negative scene frames, and the artist is told how to reach them
    clip = bpy.data.movieclips.load(os.path.join(moved, "plates", f"plate.{FIRST + 2}.png"))
    ops.create_shot(clip=clip.name, folder=os.path.join(moved, "middle.shot"), checkpoint=args["checkpoint"],
                    model=args["model"], input_size=args["input_size"])
    harness.pump(ext)
    found["middle"] = {"status": session.status, "error": session.last_error, "clip_start": clip.frame_start,
                       "scene_range": [bpy.context.scene.frame_start, bpy.context.scene.frame_end]}
    return found


harness.run(main)
