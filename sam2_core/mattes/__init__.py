"""Mattes: logits to soft alpha, clean-up, writers and vector shapes."""

from .cleanup import Cleanup
from .shapes import ObjectShapes, rasterize, read_shapes_json, shapes_from_mattes, write_shapes_json
from .soft import soft_matte

__all__ = ["Cleanup", "ObjectShapes", "rasterize", "read_shapes_json", "shapes_from_mattes", "soft_matte",
           "write_shapes_json"]
