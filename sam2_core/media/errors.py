"""The errors footage readers raise: each names the file (and frame) and says what to do."""

from __future__ import annotations


class FootageError(ValueError):
    """Footage that cannot be read as asked: a missing, damaged or unsupported file or frame."""


class ColourError(FootageError):
    """A colour setting that cannot be honoured: an unknown colour space, display, view or config."""


def gap_error(where, missing: list[int], first: int, last: int, what_to_do: str) -> FootageError:
    """The error for footage with frames missing between its first and last."""
    many = len(missing) > 1
    return FootageError(f"{where}: frame{'s' if many else ''} {frame_ranges(missing)} {'are' if many else 'is'} "
                        f"missing (the frames run {first}-{last}). {what_to_do}")


def frame_ranges(numbers: list[int]) -> str:
    """Sorted frame numbers as a person reads them: 1001, 1003-1005, 1009."""
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts)
