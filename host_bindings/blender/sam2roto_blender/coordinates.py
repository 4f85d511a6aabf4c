"""Plate pixels (the core's space) and Blender's clip and mask spaces.

Plate pixels: origin top-left, x right, y down, continuous (pixel (i, j) covers [i, i+1) x [j, j+1)).
Clip space (markers, the clip editor's view): (0, 0) bottom-left, (1, 1) top-right of the frame.
Mask space: like clip space, but both axes scaled by the frame's *longer* side, the shorter one
centred (BKE_mask_coord_from_frame); measured: a mask point at (0.2, 0.3) on a 320x240 clip
rasterises to the pixel edge x = 64, y = 184. With L = max(W, H):

    mask_x = 0.5 + (x - W / 2) / L          x = W / 2 + (mask_x - 0.5) * L
    mask_y = 0.5 - (y - H / 2) / L          y = H / 2 - (mask_y - 0.5) * L

W and H are the plate's size in pixels: where the compositor's Mask node rasterises the mask at
W x H (measured in Blender 4.2 and 5.0 with the clip's display aspect 1:1, 2:1 and 1:2: the
compositor ignores it). The Movie Clip Editor draws masks of a clip whose display aspect is not
1:1 stretched by it, so there an anamorphic clip's masks look offset from the plate.
"""

from __future__ import annotations


def plate_to_mask(x: float, y: float, width: float, height: float) -> tuple[float, float]:
    side = max(width, height)
    return 0.5 + (x - width / 2) / side, 0.5 - (y - height / 2) / side


def mask_to_plate(mx: float, my: float, width: float, height: float) -> tuple[float, float]:
    side = max(width, height)
    return width / 2 + (mx - 0.5) * side, height / 2 - (my - 0.5) * side


def clip_to_plate(u: float, v: float, width: float, height: float) -> tuple[float, float]:
    return u * width, (1.0 - v) * height


def plate_to_clip(x: float, y: float, width: float, height: float) -> tuple[float, float]:
    return x / width, 1.0 - y / height


def inside(x: float, y: float, width: float, height: float) -> bool:
    return 0.0 <= x <= width and 0.0 <= y <= height


def moved_in_view(space) -> str:
    """Why the clip editor shows the frame moved or reshaped, where clicks and overlays in
    clip space would miss the plate's pixels ("" when it shows the plate as it is)."""
    if space.show_stable and space.clip.tracking.stabilization.use_2d_stabilization:
        return "the Movie Clip Editor shows the clip stabilised (View > Show Stable)"
    if space.clip_user.use_render_undistorted:
        return "the Movie Clip Editor shows the clip undistorted (Render Undistorted)"
    return ""
