"""Footage in: video files and image sequences as FrameSources, colour-managed with OpenColorIO.

    from sam2_core.media import open_source
    src = open_source("plate.####.exr", colorspace="ACEScg")   # or "clip.mov", "scan.1001.dpx", ...
    src.frame_numbers, src.size, src.pixel_aspect, src.colour.to_dict()
    rgb = src.read(0)   # H x W x 3 uint8 sRGB, the model's input
"""

from .colour import BUILTIN_CONFIG, ColourPipeline, ColourSettings, colorspace_names
from .errors import ColourError, FootageError
from .frame_source import ArraySource, FolderSource, FrameSource, as_source, check_index
from .open import open_source, open_still
from .sequence import SequencePattern, SequenceSource
from .video import VideoSource
from .video_index import VideoIndex, default_index_dir

__all__ = [
    "BUILTIN_CONFIG",
    "ArraySource",
    "ColourError",
    "ColourPipeline",
    "ColourSettings",
    "FolderSource",
    "FootageError",
    "FrameSource",
    "SequencePattern",
    "SequenceSource",
    "VideoIndex",
    "VideoSource",
    "as_source",
    "check_index",
    "colorspace_names",
    "default_index_dir",
    "open_source",
    "open_still",
]
