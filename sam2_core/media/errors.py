"""The errors footage readers raise: each names the file (and frame) and says what to do."""

from __future__ import annotations


class FootageError(ValueError):
    """Footage that cannot be read as asked: a missing, damaged or unsupported file or frame."""


class ColourError(FootageError):
    """A colour setting that cannot be honoured: an unknown colour space, display, view or config."""
