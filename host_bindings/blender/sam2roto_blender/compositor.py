"""The soft mattes in the compositor: each object's matte sequence as an Image, and a node set-up
that puts it into the plate's alpha (Set Alpha, "Replace Alpha").

Blender changed the compositor's API in 5.0: the scene no longer owns a node tree
(`scene.node_tree`, `scene.use_nodes`); a compositor node group is assigned to
`scene.compositing_node_group` and ends in a Group Output instead of a Composite node, and
Set Alpha's mode became an input socket ("Type"). Both are handled here.
"""

from __future__ import annotations

import os
import re

import bpy

from . import blend_paths, footage

BLENDER_5 = bpy.app.version >= (5, 0, 0)
NODE_PREFIX = "sam2roto"  # our nodes' names start with this, so a rebuild replaces only them


def load_matte_sequence(pattern: str, clip: bpy.types.MovieClip, name: str) -> bpy.types.Image:
    """The matte files (a printf-free pattern with ####, as export answers) as an image sequence,
    read as data (no colour conversion: a matte value is an alpha)."""
    first = _first_file(pattern)
    image = bpy.data.images.get(name)
    if image is not None and os.path.normpath(bpy.path.abspath(image.filepath)) != os.path.normpath(first):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = bpy.data.images.load(first, check_existing=False)
        image.name = name
    image.filepath = blend_paths.as_kept(first)  # (a project moved or copied renders its own mattes)
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "Non-Color"
    image.alpha_mode = "NONE"
    image.reload()
    return image


def _first_file(pattern: str) -> str:
    folder, name = os.path.split(pattern)
    hashes = re.search(r"#+", name)
    if hashes is None:
        if os.path.isfile(pattern):
            return pattern
        raise FileNotFoundError(f"The matte {pattern} is missing: export the shot again.")
    regex = re.compile(re.escape(name[:hashes.start()]) + r"(\d+)" + re.escape(name[hashes.end():]) + "$")
    numbers = sorted(int(m.group(1)) for f in os.listdir(folder) if (m := regex.match(f)))
    if not numbers:
        raise FileNotFoundError(f"No matte files {pattern} (the export folder is empty): export the shot again.")
    return os.path.join(folder, name[:hashes.start()] + f"{numbers[0]:0{len(hashes.group())}d}" + name[hashes.end():])


def _sequence_user(node, image: bpy.types.Image, clip: bpy.types.MovieClip, frames: int) -> None:
    """An Image node showing matte file N on the scene frame where the clip shows footage frame N.
    Blender reads sequence file number (scene frame - frame_start + 1 + frame_offset)."""
    number = int(re.search(r"(\d+)\.[^.]+$", os.path.basename(image.filepath)).group(1))
    node.frame_start = footage.scene_frame(clip, number)
    node.frame_offset = number - 1
    node.frame_duration = frames
    node.use_auto_refresh = True


def _tree(scene: bpy.types.Scene):
    if BLENDER_5:
        tree = scene.compositing_node_group
        if tree is None:
            tree = bpy.data.node_groups.new(f"{scene.name} compositing", "CompositorNodeTree")
            scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True
    return scene.node_tree


def _output(tree):
    """The node the result goes into: the Composite node (4.x) or the Group Output (5.0)."""
    kind = "NodeGroupOutput" if BLENDER_5 else "CompositorNodeComposite"
    node = next((n for n in tree.nodes if n.bl_idname == kind), None)
    if node is None:
        node = tree.nodes.new(kind)
    if BLENDER_5 and not any(s.in_out == "OUTPUT" for s in tree.interface.items_tree if s.item_type == "SOCKET"):
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    return node


def _node(tree, kind: str, name: str, location: tuple[float, float]):
    node = tree.nodes.get(name) or tree.nodes.new(kind)
    node.name = node.label = name
    node.location = location
    return node


def _replace_alpha(node) -> None:
    if BLENDER_5:
        node.inputs["Type"].default_value = "Replace Alpha"
    else:
        node.mode = "REPLACE_ALPHA"


def set_up(scene: bpy.types.Scene, clip: bpy.types.MovieClip, mattes: dict[str, bpy.types.Image],
           frames: int, show: str | None = None) -> list[str]:
    """Nodes: Movie Clip -> Set Alpha (one per object, alpha from its matte) -> output, which shows
    `show` (default: the first object). An output the artist feeds from nodes of their own keeps
    its link: the matte goes to a Viewer instead. Returns what the artist should be told."""
    tree = _tree(scene)
    for node in [n for n in tree.nodes if n.name.startswith(NODE_PREFIX)]:
        tree.nodes.remove(node)
    plate = _node(tree, "CompositorNodeMovieClip", f"{NODE_PREFIX} plate", (-500, 0))
    plate.clip = clip
    output = _output(tree)
    notes = []
    if _fed_by_the_artist(output):
        output = _node(tree, "CompositorNodeViewer", f"{NODE_PREFIX} viewer", (400, 250))
        notes.append("your compositor's output is left as it was: the matte is on the Viewer")
    else:
        output.location = (400, 0)
    for i, (name, image) in enumerate(mattes.items()):
        matte = _node(tree, "CompositorNodeImage", f"{NODE_PREFIX} {name} matte", (-500, -300 - 250 * i))
        matte.image = image
        _sequence_user(matte, image, clip, frames)
        set_alpha = _node(tree, "CompositorNodeSetAlpha", f"{NODE_PREFIX} {name}", (100, -250 * i))
        _replace_alpha(set_alpha)
        tree.links.new(plate.outputs["Image"], set_alpha.inputs["Image"])
        tree.links.new(matte.outputs["Image"], set_alpha.inputs["Alpha"])
        if name == (show or next(iter(mattes))):
            tree.links.new(set_alpha.outputs["Image"], output.inputs[0])
    scene.render.use_compositing = True
    render = scene.render
    if (render.resolution_x, render.resolution_y) != tuple(clip.size):
        # (the mattes are the clip's size; the scale, resolution_percentage, stays the artist's)
        notes.append(f"render resolution set to the clip's {clip.size[0]}x{clip.size[1]} "
                     f"(was {render.resolution_x}x{render.resolution_y})")
        render.resolution_x, render.resolution_y = clip.size
    return notes


def _fed_by_the_artist(output) -> bool:
    """Whether the output's image comes from a node of the artist's (not ours, not the Render
    Layers node a new compositor starts with)."""
    links = output.inputs[0].links if output.inputs else ()
    return any(not link.from_node.name.startswith(NODE_PREFIX) and link.from_node.bl_idname != "CompositorNodeRLayers"
               for link in links)
