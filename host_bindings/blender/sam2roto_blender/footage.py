"""A Movie Clip as the SAM 2 core sees it: the source path, frame numbers and colour space.

Frames: Blender shows clip frame 1 at the scene frame `clip.frame_start`; `clip.frame_offset`
shifts which footage frame that is. The core counts a sequence's frames by the numbers in
its file names (plate.1001.exr is frame 1001), and a video's from 0. So the footage frame
shown on scene frame f is

    source = first + (f - clip.frame_start) + clip.frame_offset

where `first` is the number in the clip's file name for a sequence (Blender starts the
sequence at the file the clip was opened from), 0 for a video.
"""

from __future__ import annotations

import os
import re

import bpy

# Blender's built-in colour spaces (4.2 .. 5.0) by the names the core's OCIO config (the OCIO
# built-in studio config) gives the same space. Names not listed go to the core unchanged: with
# $OCIO set, Blender and the core read the same config and so share its names.
OCIO_NAMES = {
    "Linear Rec.709": "Linear Rec.709 (sRGB)",
    "scene_linear": "Linear Rec.709 (sRGB)",
    "Linear Rec.2020": "Linear Rec.2020",
    "Linear DCI-P3 D65": "Linear P3-D65",
    "ACEScg": "ACEScg",
    "ACES2065-1": "ACES2065-1",
    "ACEScc": "ACEScc",
    "ACEScct": "ACEScct",
    "sRGB": "sRGB Encoded Rec.709 (sRGB)",
    "Display P3": "sRGB Encoded P3-D65",
    "Rec.1886": "Gamma 2.4 Encoded Rec.709",
    "Non-Color": "Raw",
}
# Blender's view transforms and display encodings: footage is never recorded in these.
NOT_FOOTAGE = ("AgX", "Filmic", "Khronos", "ACES 1.3 sRGB", "ACES 2.0 sRGB", "Rec.2100", "Rec.2020",
               "Linear CIE-XYZ", "Linear FilmLight")
# Formats that can hold scene-referred pixels: there "sRGB" is an explicit choice, not the default.
FLOAT_FORMATS = (".exr", ".hdr", ".dpx", ".cin", ".tif", ".tiff")

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)(\.[^.]+)$")


class FootageError(ValueError):
    """A clip the core cannot read as it is; the message says what to change."""


def clip_path(clip: bpy.types.MovieClip) -> str:
    return os.path.normpath(bpy.path.abspath(clip.filepath, library=clip.library))


def is_sequence(clip: bpy.types.MovieClip) -> bool:
    return clip.source == "SEQUENCE"


def first_number(clip: bpy.types.MovieClip) -> int:
    """The footage frame number of clip frame 1 (before frame_offset)."""
    if not is_sequence(clip):
        return 0
    match = _TRAILING_NUMBER.match(os.path.basename(clip_path(clip)))
    if match is None:
        raise FootageError(f"Clip '{clip.name}': the file name {os.path.basename(clip.filepath)!r} has no frame "
                           "number, so the frames of the sequence cannot be told apart.")
    return int(match.group(2))


def source_path(clip: bpy.types.MovieClip) -> str:
    """The path the core opens: a video file as it is, a sequence as a printf pattern (plate.%04d.exr)."""
    path = clip_path(clip)
    if not is_sequence(clip):
        if not os.path.isfile(path):
            raise FootageError(f"Clip '{clip.name}': the file {path} is missing. Relink the clip and try again.")
        return path
    folder, name = os.path.split(path)
    match = _TRAILING_NUMBER.match(name)
    if match is None:
        first_number(clip)  # raises the error that says why
    head, digits, ext = match.groups()
    pattern = os.path.join(folder, f"{head.replace('%', '%%')}%0{len(digits)}d{ext}")
    if not os.path.isfile(path):
        raise FootageError(f"Clip '{clip.name}': the frame {path} is missing. Relink the clip and try again.")
    return pattern


def source_frame(clip: bpy.types.MovieClip, scene_frame: int) -> int:
    return first_number(clip) + (scene_frame - clip.frame_start) + clip.frame_offset


def scene_frame(clip: bpy.types.MovieClip, source: int) -> int:
    return clip.frame_start + (source - first_number(clip)) - clip.frame_offset


def core_colorspace(clip: bpy.types.MovieClip) -> str | None:
    """The colour space to name to the core, or None for the file type's default.

    An 8-bit or video clip marked sRGB (Blender's default for those) goes to the core without a
    colour space, which then gives the model the file's code values unchanged: exactly what SAM 2
    was trained on. Everything else is named, mapped to the core's OCIO names."""
    name = clip.colorspace_settings.name
    ext = os.path.splitext(clip.filepath)[1].lower()
    if name == "sRGB" and ext not in FLOAT_FORMATS:
        return None
    if os.environ.get("OCIO"):
        return name  # Blender and the core both read this config: the names are the same
    if name in OCIO_NAMES:
        return OCIO_NAMES[name]
    if name.startswith(NOT_FOOTAGE):
        raise FootageError(f"Clip '{clip.name}' is set to the colour space {name!r}, a display look rather than a "
                           "footage encoding. In the Movie Clip Editor's sidebar (Footage > Color Space), choose the "
                           "space the footage was recorded in (e.g. sRGB, Linear Rec.709, ACEScg) and try again.")
    return name
