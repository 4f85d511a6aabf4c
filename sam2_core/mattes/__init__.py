"""Mattes: logits to soft alpha, clean-up, writers and vector shapes."""

from .cleanup import Cleanup
from .soft import soft_matte

__all__ = ["Cleanup", "soft_matte"]
