"""Matte clean-up an artist asks for, each step optional and set per object: temporal
smoothing against flicker, hole filling, small-island removal, grow/shrink, feather."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import cv2
import numpy as np

WHOLE_SETTINGS = ("fill_holes", "remove_islands", "temporal")
# (lowest, highest, unit): beyond these a step takes minutes a frame (grow, feather) or holds
# that many frames in memory (temporal); areas larger than the frame are the whole frame
LIMITS = {"grow": (-100, 100, "pixels"), "feather": (0, 200, "pixels"), "fill_holes": (0, None, "pixels"),
          "remove_islands": (0, None, "pixels"), "temporal": (0, 25, "frames")}


def setting_rule(name: str) -> str:
    """What a clean-up setting must be, in words."""
    low, high, unit = LIMITS[name]
    kind = "a whole number" if name in WHOLE_SETTINGS else "a number"
    return f"{kind}, {low} or more ({unit})" if high is None else f"{kind} from {low} to {high} ({unit})"


def checked_setting(name: str, value, *, clamp: bool = False):
    """A clean-up setting as given (JSON, the command line): a number of the right kind, within
    its limits (`clamp`: brought within them, for settings kept from before the limits)."""
    low, high, _ = LIMITS[name]
    try:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # (an integer with hundreds of digits)
        ok = False
    whole = name in WHOLE_SETTINGS
    if ok and clamp:
        value = max(low, value if high is None else min(value, high))
    if not ok or (whole and value != int(value)) or value < low or (high is not None and value > high):
        raise ValueError(f"clean-up setting {name} must be {setting_rule(name)}; got {value!r}")
    return int(value) if whole else float(value)


@dataclass(frozen=True)
class Cleanup:
    grow: float = 0.0  # pixels; negative shrinks
    feather: float = 0.0  # pixels of soft edge (Gaussian blur radius)
    fill_holes: int = 0  # fill enclosed gaps up to this many pixels
    remove_islands: int = 0  # drop separate specks up to this many pixels
    temporal: int = 0  # frames each side averaged against flicker (0: off)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, clamp: bool = False) -> Cleanup:
        """`clamp`: values beyond the limits are brought within them (settings a shot kept from
        before the limits), not refused."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Unknown clean-up settings: {', '.join(sorted(unknown))}")
        return cls(**{name: checked_setting(name, value, clamp=clamp) for name, value in data.items()})

    def apply(self, alpha: np.ndarray) -> np.ndarray:
        """The per-frame steps, in order: holes, islands, grow/shrink, feather."""
        out = np.asarray(alpha, np.float32)
        if self.fill_holes > 0:
            out = fill_holes(out, min(self.fill_holes, out.size))
        if self.remove_islands > 0:
            out = remove_islands(out, min(self.remove_islands, out.size))
        if self.grow:
            out = grow(out, self.grow)
        if self.feather > 0:
            out = feather(out, self.feather)
        return out

    def run(self, frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
        """All steps over a shot's (frame number, alpha) in order."""
        stream = temporal_smooth(frames, self.temporal) if self.temporal > 0 else frames
        for number, alpha in stream:
            yield number, self.apply(alpha)


def _components(binary: np.ndarray):
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    return labels, stats[:, cv2.CC_STAT_AREA]


SOLID = 0.99  # alpha from which a matte counts as solid object
SOFT_EDGE_MODEL_PIXELS = 3  # how wide a soft edge gets: the logits' slope and the plate's refinement (model pixels)


def fill_holes(alpha: np.ndarray, max_area: int) -> np.ndarray:
    """Background regions enclosed by the object (not touching the frame's border) of at
    most max_area pixels become object, with the soft edge around them."""
    labels, areas = _components(alpha < 0.5)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small = (areas <= max_area)
    small[0] = False
    small[border] = False
    holes = small[labels]
    # the soft ring around a hole: the part of the matte short of solid that holds the hole, no
    # other background, and lies within a soft edge's reach of the hole (a hole near the
    # object's own edge keeps that edge; one in a see-through area, hair or glass, keeps it)
    soft, _ = _components(alpha < SOLID)
    count = soft.max() + 1
    holds_hole = np.bincount(soft[holes], minlength=count) > 0
    holds_background = np.bincount(soft[(alpha < 0.5) & ~holes], minlength=count) > 0
    reach = max(4, round(SOFT_EDGE_MODEL_PIXELS * max(alpha.shape) / 256))
    near = cv2.dilate(holes.astype(np.uint8), _disc(reach)).astype(bool)
    within_reach = np.bincount(soft[~near], minlength=count) == 0
    ring = holds_hole & ~holds_background & within_reach
    ring[0] = False
    return np.where(holes | ring[soft], 1.0, alpha).astype(np.float32)


def remove_islands(alpha: np.ndarray, max_area: int) -> np.ndarray:
    """Object regions of at most max_area pixels, separate from the rest, are removed."""
    labels, areas = _components(alpha >= 0.5)
    small = areas <= max_area
    small[0] = False
    # the soft fringe around a removed speck goes too
    gone = cv2.dilate(small[labels].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    keep_fringe = cv2.dilate((~small[labels] & (labels > 0)).astype(np.uint8), np.ones((3, 3), np.uint8))
    return np.where(gone & ~keep_fringe.astype(bool), 0.0, alpha).astype(np.float32)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grow(alpha: np.ndarray, pixels: float) -> np.ndarray:
    """Dilate (pixels > 0) or erode (pixels < 0) the matte, soft edge included; a fraction of
    a pixel blends the two whole sizes either side (1.5 is halfway from 1 to 2)."""
    op = cv2.dilate if pixels > 0 else cv2.erode

    def by(radius: int) -> np.ndarray:
        return alpha if radius == 0 else op(alpha, _disc(radius), borderType=cv2.BORDER_REPLICATE)

    size = abs(pixels)
    low, high = int(np.floor(size)), int(np.ceil(size))
    if low == high:
        return by(low)
    part = np.float32(size - low)
    return ((1 - part) * by(low) + part * by(high)).astype(np.float32)


def feather(alpha: np.ndarray, pixels: float) -> np.ndarray:
    sigma = pixels / 2.0
    return np.clip(cv2.GaussianBlur(alpha, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE), 0, 1)


def temporal_smooth(frames: Iterable[tuple[int, np.ndarray]], radius: int) -> Iterator[tuple[int, np.ndarray]]:
    """Each frame averaged with `radius` frames each side (triangular weights; fewer at the
    ends of the shot), streaming: holds 2 * radius + 1 frames at a time."""
    window: deque = deque()
    pending: deque = deque()
    weights = {d: radius + 1 - abs(d) for d in range(-radius, radius + 1)}

    def smoothed(centre: int) -> np.ndarray:
        total, acc = 0.0, None
        for k, (_, a) in enumerate(window):
            w = weights.get(k - centre)
            if w is None:
                continue
            acc = a * w if acc is None else acc + a * w
            total += w
        return (acc / total).astype(np.float32)

    for number, alpha in frames:
        window.append((number, np.asarray(alpha, np.float32)))
        pending.append(number)
        if len(window) > 2 * radius + 1:
            window.popleft()
        if len(pending) > radius:  # the frame `radius` back has all its neighbours now
            centre = len(window) - 1 - radius
            yield pending.popleft(), smoothed(centre)
    while pending:
        centre = len(window) - len(pending)
        yield pending.popleft(), smoothed(centre)
