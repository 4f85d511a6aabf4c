"""Inside Blender: import a shapes file (made by pytest from a synthetic moving disc) with the
extension's operator, then rasterise the mask with Blender's compositor (Mask node) on every
frame to PNG files. pytest compares them with the discs."""

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def compositor_mask_render(scene, mask, width: int, height: int):
    """A compositor showing only `mask`, rendered to 8-bit greyscale PNG files (Standard view, so
    pixel values are not reshaped by the default AgX view)."""
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "BW"
    if bpy.app.version >= (5, 0, 0):
        tree = bpy.data.node_groups.new("mask only", "CompositorNodeTree")
        scene.compositing_node_group = tree
        output = tree.nodes.new("NodeGroupOutput")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        node = tree.nodes.new("CompositorNodeMask")
        node.inputs["Feather"].default_value = False
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        output = tree.nodes.new("CompositorNodeComposite")
        node = tree.nodes.new("CompositorNodeMask")
        node.use_feather = False
    node.mask = mask
    tree.links.new(node.outputs[0], output.inputs[0])


def main(args):
    ext = harness.enable_extension(args)
    scene = bpy.context.scene
    clip = bpy.data.movieclips.load(args["clip"])
    clip.frame_start = args["clip_frame_start"]
    findings = {"errors": {}}
    # bad input first: a file that is not a shapes file, a missing file
    findings["errors"]["not_shapes"] = harness.operator_error(
        lambda: bpy.ops.sam2roto.import_shapes(filepath=args["not_shapes"], clip=clip.name))
    findings["errors"]["missing"] = harness.operator_error(
        lambda: bpy.ops.sam2roto.import_shapes(filepath=args["shapes"] + ".missing", clip=clip.name))
    assert bpy.ops.sam2roto.import_shapes(filepath=args["shapes"], clip=clip.name) == {"FINISHED"}
    mask = bpy.data.masks[f"{clip.name} roto"]
    layer = mask.layers[args["object"]]
    fcurves = ext.animation.fcurves_of(mask, "", 0)
    co_keys = sorted({k.co[0] for fc in fcurves if fc.data_path.endswith(".co") for k in fc.keyframe_points})
    hide_keys = {int(k.co[0]): bool(k.co[1]) for fc in fcurves if fc.data_path.endswith(".hide_render")
                 for k in fc.keyframe_points}
    findings.update(layers=[lay.name for lay in mask.layers], splines=len(layer.splines),
                    points=len(layer.splines[0].points), co_key_frames=co_keys, hide_render_keys=hide_keys)
    width, height = clip.size
    compositor_mask_render(scene, mask, width, height)
    renders = {}
    for source in args["frames"]:
        frame = ext.footage.scene_frame(clip, source)
        scene.frame_set(frame)
        scene.render.filepath = os.path.join(args["render_dir"], f"mask.{source}.png")
        bpy.ops.render.render(write_still=True)
        renders[source] = scene.render.filepath
    findings["renders"] = renders
    # the same mask, rasterised by the add-on itself (as a mask prompt) on one frame
    source = args["frames"][1]
    path, area = ext.mask_prompt.write_prompt(mask, scene, ext.footage.scene_frame(clip, source), width, height,
                                              os.path.join(args["render_dir"], "prompt.png"))
    findings["prompt"] = {"frame": source, "path": path, "area": area}
    return findings


harness.run(main)
