"""Inside Blender, against the real service: what the artist did to the scene survives Import
Results and what follows it. The artist's edits: a Mask renamed, a layer drawn under an
object's name, a compositor of their own, a render scale, a clip with a frame offset, a Ctrl-Z
after the import; then a scene renamed while the export runs, an export that fails, and the
project folder (the .blend, its plates and shot) moved. pytest checks the findings."""

import io
import os
import shutil
import sys

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
    scene, clip = bpy.context.scene, bpy.data.movieclips[0]
    ops.add_point(object="ball", frame=ext.footage.scene_frame(clip, FIRST + 1), x=70, y=120)
    harness.pump(ext)
    found["moved"] = {"source": session.shot["source"], "error": session.last_error,
                      "answered": session.masks.get(("ball", FIRST + 1)) is not None,
                      "mattes": [bpy.path.abspath(image.filepath) for image in bpy.data.images
                                 if image.name.endswith(" matte")]}

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
